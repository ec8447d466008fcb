"""`moe-inspect detect`."""

from __future__ import annotations

import typer

from .options import (FlashinferVersionOpt, ModelArg, NoCatalogOpt, OfflineOpt, RevisionOpt, VllmVersionOpt,
                      output_options)
from .output import Output, handle_errors

app = typer.Typer()

EPILOG = (
    "Examples:\n\n"
    "  moe-inspect detect MiniMaxAI/MiniMax-M2.5\n\n"
    "  moe-inspect detect ./my-checkpoint --json\n\n"
    "  moe-inspect detect deepseek-ai/DeepSeek-V3 --format markdown   # for a PR description\n\n"
    "  moe-inspect detect openai/gpt-oss-20b -q                       # just the method name\n\n"
    "  moe-inspect detect deepseek-ai/DeepSeek-V3 --vllm-version pre-39141 --flashinfer-version 0.6.7"
)


@app.command("detect", epilog=EPILOG)
@handle_errors
@output_options
def detect(
    model: ModelArg,
    out: Output,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    no_catalog: NoCatalogOpt = False,
    vllm_version: VllmVersionOpt = None,
    flashinfer_version: FlashinferVersionOpt = None,
) -> None:
    """Which routing method does this MoE model use, and which RoutingMethodType is it?"""
    from ..detect import describe

    with out.status() as update:
        desc = describe(
            model,
            revision=revision,
            offline=True if offline else None,
            use_catalog=not no_catalog,
            vllm_version=vllm_version,
            flashinfer_version=flashinfer_version,
            progress=update,
        )
    out.dict(desc.to_dict(), human=_human, markdown=_markdown, id_key="routing.method")


def _human(data: dict, out: Output) -> None:
    from .render import detect_view  # Rich only when a person reads it

    detect_view(data, out)


def _markdown(data: dict) -> str:
    from .render import detect_markdown

    return detect_markdown(data)
