"""`moe-inspect detect`."""

from __future__ import annotations

import typer

from .options import FlashinferVersionOpt, JsonOpt, ModelArg, NoCatalogOpt, OfflineOpt, RevisionOpt, VllmVersionOpt
from .output import console, handle_errors, print_json, progress



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
        model: ModelArg,
        revision: RevisionOpt = None,
        offline: OfflineOpt = False,
        no_catalog: NoCatalogOpt = False,
        vllm_version: VllmVersionOpt = None,
        flashinfer_version: FlashinferVersionOpt = None,
        json_out: JsonOpt = False,
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
