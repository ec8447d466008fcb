"""Options shared by several commands: one definition each, so help texts stay the same."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="Hub id (org/name), local directory, or catalog name.")]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Hub revision (branch, tag or commit).")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Never contact the Hub (also HF_HUB_OFFLINE=1).")]
NoCatalogOpt = Annotated[bool, typer.Option("--no-catalog", help="Do not fall back to the built-in catalog.")]
VllmVersionOpt = Annotated[Optional[str], typer.Option(
    "--vllm-version", help="vLLM enum the routing ids refer to: pre-39141, 39141, 44347, 0.33 (default).")]
FlashinferVersionOpt = Annotated[Optional[str], typer.Option(
    "--flashinfer-version", help="FlashInfer version whose RoutingMethodType ids to use: 0.6.7 … 0.7.2.post1 (default).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
