"""`--vllm-args`: flags of a real `vllm serve` line, spelled as vLLM 0.33.0's EngineArgs.add_cli_args
(vllm/engine/arg_utils.py) spells them."""

import pytest

from moe_inspect.deploy.vllm_args import parse_max_model_len, parse_vllm_args
from moe_inspect.errors import BadInputError


def test_a_full_serve_line():
    a = parse_vllm_args("vllm serve deepseek-ai/DeepSeek-V3 --tensor-parallel-size 8 --enable-expert-parallel "
                        "--max-model-len 32k --gpu-memory-utilization 0.85 --kv-cache-dtype fp8 --trust-remote-code "
                        "--served-model-name ds3 --port 8000")
    assert a.model == "deepseek-ai/DeepSeek-V3"
    assert (a.tp, a.ep_enabled, a.max_model_len, a.gpu_memory_utilization, a.kv_cache_dtype) == \
        (8, True, 32000, 0.85, "fp8")
    # nothing dropped silently: the flags we do not read come back, values attached
    assert a.ignored == ("--trust-remote-code", "--served-model-name ds3", "--port 8000")
    lay = a.layout()
    assert lay.moe_ep == 8 and not lay.use_all2all_kernels


def test_short_aliases_and_equals_form():
    a = parse_vllm_args("-tp=4 -dp 2 -ep -q fp8 --all2all-backend=deepep_low_latency Qwen/Qwen3-30B-A3B")
    assert (a.tp, a.dp, a.ep_enabled, a.quantization, a.all2all_backend, a.model) == \
        (4, 2, True, "fp8", "deepep_low_latency", "Qwen/Qwen3-30B-A3B")
    lay = a.layout()
    assert lay.gpus == 8 and lay.moe_ep == 8 and lay.use_deepep_ll_kernels


def test_eplb_config_json_and_dotted():
    a = parse_vllm_args("""m -tp 8 -ep --enable-eplb --eplb-config '{"num_redundant_experts": 32, "window_size": 1000}'""")
    assert a.eplb and a.num_redundant_experts == 32
    b = parse_vllm_args("m --enable-eplb --eplb-config.num_redundant_experts 16")
    assert b.num_redundant_experts == 16


def test_no_prefix_boolean():
    assert parse_vllm_args("m -tp 2 --no-enable-expert-parallel").ep_enabled is False


def test_moe_backend_from_flag_or_kernel_config():
    assert parse_vllm_args("m --moe-backend flashinfer_trtllm").moe_backend == "flashinfer_trtllm"
    assert parse_vllm_args("""m --kernel-config '{"moe_backend": "triton"}'""").moe_backend == "triton"


@pytest.mark.parametrize("text,value", [("32768", 32768), ("32k", 32000), ("32K", 32768), ("1m", 1000000),
                                        ("auto", None), ("-1", None)])
def test_max_model_len_human_readable(text, value):
    # vllm/utils/argparse_utils.py:30-74 human_readable_int (k = 10^3, K = 2^10)
    assert parse_max_model_len(text) == value


@pytest.mark.parametrize("line", ["m -tp eight", "m --gpu-memory-utilization 1.5", "m --max-model-len 1.5K",
                                  "m --eplb-config '{bad'", "m -tp", "m 'unclosed"])
def test_bad_values_are_one_line_bad_input(line):
    with pytest.raises(BadInputError) as e:
        parse_vllm_args(line)
    assert "\n" not in e.value.message


def test_python_module_entrypoint_prefix():
    a = parse_vllm_args("python -m vllm.entrypoints.openai.api_server --model openai/gpt-oss-120b -tp 8")
    assert a.model == "openai/gpt-oss-120b" and a.tp == 8
