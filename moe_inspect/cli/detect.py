"""`moe-inspect detect`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .output import console, handle_errors, print_json, progress

VLLM_HELP = "vLLM enum the ids refer to: pre-39141, 39141, 44347, 0.33 (default)."
FI_HELP = "FlashInfer version whose RoutingMethodType ids to print: 0.6.7 … 0.7.2.post1 (default)."


def register(app: typer.Typer) -> None:
    @app.command(
        "detect",
        epilog=(
            "Examples:\n\n"
            "  moe-inspect detect MiniMaxAI/MiniMax-M2.5\n\n"
            "  moe-inspect detect ./my-checkpoint --json\n\n"
            "  moe-inspect detect deepseek-ai/DeepSeek-V3 --vllm-version pre-39141 --flashinfer-version 0.6.7"
        ),
    )
    @handle_errors
    def detect(
        model: Annotated[str, typer.Argument(help="Hub id (org/name), local directory, or catalog name.")],
        revision: Annotated[Optional[str], typer.Option(help="Hub revision (branch, tag or commit).")] = None,
        offline: Annotated[bool, typer.Option("--offline", help="Never contact the Hub (also HF_HUB_OFFLINE=1).")] = False,
        no_catalog: Annotated[bool, typer.Option("--no-catalog", help="Do not fall back to the built-in catalog.")] = False,
        vllm_version: Annotated[Optional[str], typer.Option(help=VLLM_HELP)] = None,
        flashinfer_version: Annotated[Optional[str], typer.Option(help=FI_HELP)] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Which routing method does this MoE model use, and which RoutingMethodType is it?"""
        from ..detect import describe

        with progress(not json_out) as update:
            desc = describe(
                model,
                revision=revision,
                offline=True if offline else None,
                use_catalog=not no_catalog,
                vllm_version=vllm_version,
                flashinfer_version=flashinfer_version,
                progress=update,
            )
        data = desc.to_dict()
        if json_out:
            print_json(data)
        else:
            from .render import detect_view

            detect_view(data, console())
