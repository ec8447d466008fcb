"""``detect``: from a model name or path to a :class:`ModelDescription`.

Pipeline: source (local dir → HF cache → Hub → built-in catalog) → tensor evidence from the
safetensors headers → config normalization (per-architecture table) → quantization detection →
routing-method resolution (vLLM's rules for the chosen version) → one description with every
warning gathered. No torch, transformers or flashinfer is imported on this path.
"""

from __future__ import annotations

from typing import Callable

from .spec import ModelDescription, ModelFiles


def describe_files(
    files: ModelFiles,
    *,
    vllm_version: str | None = None,
    flashinfer_version: str | None = None,
) -> ModelDescription:
    """Describe a model whose files a source already delivered (or a test built)."""
    from . import enums, normalize, quant, routing, tensors

    evidence = tensors.find_evidence(files.tensors, files.weight_map) if (files.tensors or files.weight_map) else None
    spec, spec_warnings = normalize.normalize(files.config, evidence)
    q = quant.detect_quant(files.config, files.hf_quant_config, files.tensors)
    r = routing.resolve(
        spec,
        vllm_version=vllm_version or enums.DEFAULT_VLLM,
        flashinfer_version=flashinfer_version or enums.DEFAULT_FLASHINFER,
    )
    if files.ref.model_type is None:
        files.ref.model_type = spec.model_type
    if files.ref.architecture is None:
        files.ref.architecture = spec.architecture
    warnings = _dedupe([*files.warnings, *spec_warnings, *q.warnings, *r.warnings])
    return ModelDescription(model=files.ref, moe=spec, routing=r, quantization=q, tensors=evidence, warnings=warnings,
                            shape=normalize.read_shape(files.config, spec))


def describe(
    model: str,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    use_catalog: bool = True,
    vllm_version: str | None = None,
    flashinfer_version: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ModelDescription:
    """Find ``model`` (path, cache, Hub or catalog) and describe its MoE routing."""
    from . import enums, sources

    # validate version strings before any I/O: a typo should not cost a Hub round trip
    enums.flashinfer_enum(flashinfer_version or enums.DEFAULT_FLASHINFER)
    enums.vllm_enum(vllm_version or enums.DEFAULT_VLLM)
    files = sources.load_model(model, revision=revision, offline=offline, use_catalog=use_catalog, progress=progress)
    return describe_files(files, vllm_version=vllm_version, flashinfer_version=flashinfer_version)


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for w in items:
        if w and w not in seen:
            seen.add(w)
            out.append(w)
    return out
