"""Rich renderings of core results (people's view). JSON output never goes through here."""

from __future__ import annotations

from typing import Any


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return _ranges(v) if v and all(isinstance(i, int) for i in v) else ", ".join(map(str, v)) or "—"
    return str(v)


def _ranges(ids: list[int]) -> str:
    """[0,1,2,3,7] -> '0–3, 7 (5)'."""
    ids = sorted(set(ids))
    parts, start, prev = [], ids[0], ids[0]
    for i in ids[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start}–{prev}" if prev > start else str(start))
        if i is not None:
            start = prev = i
    return f"{', '.join(parts)} ({len(ids)})"


MOE_ROWS = (
    ("num_experts", "experts"),
    ("top_k", "top-k"),
    ("scoring_func", "scoring"),
    ("has_correction_bias", "correction bias"),
    ("n_group", "expert groups"),
    ("topk_group", "top-k groups"),
    ("use_grouped_topk", "grouped top-k router"),
    ("renormalize", "renormalize"),
    ("routed_scaling_factor", "routed scaling"),
    ("custom_routing", "custom routing"),
    ("num_hash_layers", "hash-routed layers"),
    ("zero_expert_num", "zero experts"),
    ("linear_router_bias", "linear router bias"),
    ("router_dtype", "router dtype"),
    ("hidden_size", "hidden size"),
    ("moe_intermediate_size", "expert width"),
    ("num_shared_experts", "shared experts"),
    ("activation", "activation"),
    ("moe_layers", "MoE layers"),
    ("mtp_layers", "MTP layers"),
)

# rows shown only when they carry information
_OPTIONAL = {"custom_routing", "num_hash_layers", "zero_expert_num", "linear_router_bias", "topk_group",
             "use_grouped_topk", "mtp_layers"}


def detect_view(d: dict, console) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    m, moe, r, q = d["model"], d["moe"], d["routing"], d["quantization"]
    src = m["source"]
    if src == "catalog":
        src += f" snapshot {m.get('snapshot_date')}"
    elif m.get("path"):
        src += f" {m['path']}"
    if m.get("bytes_read"):
        src += f", {m['bytes_read']:,} bytes read"
    head = Text.assemble((m["id"], "bold"), f"  {m.get('model_type') or '?'} · {m.get('architecture') or '?'} · from {src}")
    console.print(head)

    ok = r["method"] not in ("Unspecified", "Custom", "Simulated") and r.get("fused_routing_possible", True)
    style = "bold green" if ok else "bold yellow"
    fi = r.get("flashinfer_value")
    fi_txt = f"FlashInfer {r['flashinfer_version']}: {fi}" if fi is not None else f"FlashInfer {r['flashinfer_version']}: no such member"
    if r.get("flashinfer_name") and fi is None or (r.get("flashinfer_name") and r["flashinfer_name"] != r["method"]):
        fi_txt += f" (id {r['vllm_value']} means {r['flashinfer_name']} there)"
    body = Text.assemble(
        (r["method"], style),
        f"   vLLM {r['vllm_version']}: {r['vllm_value']} · {fi_txt} · SGLang: {r.get('sglang_label') or '—'}\n",
        ("rule: ", "dim"), r["rule"], "\n",
        ("router: ", "dim"), r.get("router") or "—",
    )
    console.print(Panel(body, title="routing method", title_align="left", expand=False))

    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("MoE field")
    t.add_column("value")
    t.add_column("from", style="dim")
    prov = moe.get("provenance", {})
    guessed = set(moe.get("guessed", []))
    for key, label in MOE_ROWS:
        v = moe.get(key)
        if key in _OPTIONAL and v in (None, 0, False, [], ""):
            continue
        val = _fmt(v)
        if key == "top_k" and moe.get("per_layer", {}).get("top_k"):
            val += " (per-layer list)"
        if key in guessed:
            val += " [guessed]"
        t.add_row(label, val, prov.get(key, ""))
    console.print(t)

    qline = q["method"]
    extras = [x for x in (q.get("producer"), q.get("weight_dtype"), q.get("activation_scheme") and f"act {q['activation_scheme']}",
                          q.get("block_size") and "×".join(map(str, q["block_size"])) + " blocks",
                          q.get("scale_fmt") and f"scales {q['scale_fmt']}") if x]
    if extras:
        qline += " (" + ", ".join(extras) + ")"
    if q.get("vllm_weight_key") or q.get("vllm_activation_key"):
        qline += f" → vLLM {q.get('vllm_weight_key') or '—'} × {q.get('vllm_activation_key') or 'unquantized act'}"
    if q.get("expert_format"):
        qline += f"; routed experts: {q['expert_format']}"
    console.print(Text.assemble(("quantization: ", "bold"), qline))

    ev = d.get("tensors")
    if ev and (ev.get("router_weight") or ev.get("router_bias")):
        parts = []
        for k in ("router_weight", "router_bias", "linear_bias", "hash_table"):
            ti = ev.get(k)
            if ti:
                parts.append(f"{ti['name']} {ti['dtype']} {ti['shape']}")
        console.print(Text.assemble(("tensors (layer " + str(ev.get("layer")) + "): ", "bold"), "; ".join(parts)))
    for n in r.get("notes", []):
        console.print(Text.assemble(("note: ", "bold"), n))
    for w in d.get("warnings", []):
        console.print(Text.assemble(("warning: ", "bold yellow"), w))
