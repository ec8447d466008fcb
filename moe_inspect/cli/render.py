"""Rich renderings of core results (people's view). JSON output never goes through here."""

from __future__ import annotations


from .output import Column, fmt_value, markdown_table


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


def _source_text(m: dict) -> str:
    src = m["source"]
    if src == "catalog":
        src += f" snapshot {m.get('snapshot_date')}"
    elif m.get("path"):
        src += f" {m['path']}"
    if m.get("bytes_read"):
        src += f", {m['bytes_read']:,} bytes read"
    return src


def _head_text(m: dict) -> str:
    return f"{m.get('model_type') or '?'} · {m.get('architecture') or '?'} · from {_source_text(m)}"


def _ids_text(r: dict) -> str:
    fi = r.get("flashinfer_value")
    fi_txt = f"FlashInfer {r['flashinfer_version']}: {fi}" if fi is not None else f"FlashInfer {r['flashinfer_version']}: no such member"
    if r.get("flashinfer_name") and fi is None or (r.get("flashinfer_name") and r["flashinfer_name"] != r["method"]):
        fi_txt += f" (id {r['vllm_value']} means {r['flashinfer_name']} there)"
    return f"vLLM {r['vllm_version']}: {r['vllm_value']} · {fi_txt} · SGLang: {r.get('sglang_label') or '—'}"


def _moe_rows(moe: dict) -> list[dict]:
    """The MoE field table's rows: label, formatted value, provenance."""
    prov = moe.get("provenance", {})
    guessed = set(moe.get("guessed", []))
    rows = []
    for key, label in MOE_ROWS:
        v = moe.get(key)
        if key in _OPTIONAL and v in (None, 0, False, [], ""):
            continue
        val = fmt_value(v)
        if key == "top_k" and moe.get("per_layer", {}).get("top_k"):
            val += " (per-layer list)"
        if key in guessed:
            val += " [guessed]"
        rows.append({"field": label, "value": val, "from": prov.get(key, "")})
    return rows


def _quant_text(q: dict) -> str:
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
    return qline


def _tensors_text(ev: dict | None) -> str | None:
    if not (ev and (ev.get("router_weight") or ev.get("router_bias"))):
        return None
    parts = []
    for k in ("router_weight", "router_bias", "linear_bias", "hash_table"):
        ti = ev.get(k)
        if ti:
            parts.append(f"{ti['name']} {ti['dtype']} {ti['shape']}")
    return "; ".join(parts)


def _moe_columns():
    return (Column("MoE field", "field"), Column("value", "value"), Column("from", "from", style="dim"))


def detect_view(d: dict, out) -> None:
    """People's view of a ModelDescription dict (``out``: the command's Output)."""
    from rich.panel import Panel
    from rich.text import Text

    m, moe, r, q = d["model"], d["moe"], d["routing"], d["quantization"]
    out.print(Text.assemble((m["id"], "bold"), "  " + _head_text(m)))

    ok = r["method"] not in ("Unspecified", "Custom", "Simulated") and r.get("fused_routing_possible", True)
    body = Text.assemble(
        (r["method"], "bold green" if ok else "bold yellow"), "   " + _ids_text(r) + "\n",
        ("rule: ", "dim"), r["rule"], "\n",
        ("router: ", "dim"), r.get("router") or "—",
    )
    out.print(Panel(body, title="routing method", title_align="left", expand=False))
    out.table(_moe_rows(moe), _moe_columns(), box=None)
    out.print(Text.assemble(("quantization: ", "bold"), _quant_text(q)))
    tensors = _tensors_text(d.get("tensors"))
    if tensors:
        out.print(Text.assemble(("tensors (layer " + str(d["tensors"].get("layer")) + "): ", "bold"), tensors))
    for n in r.get("notes", []):
        out.print(Text.assemble(("note: ", "bold"), n))
    for w in d.get("warnings", []):
        out.print(Text.assemble(("warning: ", "bold yellow"), w))


def detect_markdown(d: dict) -> str:
    """The same answer as Markdown (a PR description, an issue)."""
    m, moe, r, q = d["model"], d["moe"], d["routing"], d["quantization"]
    lines = [f"### `{m['id']}` — {_head_text(m)}", "",
             f"**routing method: {r['method']}** — {_ids_text(r)}", "",
             f"- rule: {r['rule']}", f"- router: {r.get('router') or '—'}",
             f"- quantization: {_quant_text(q)}"]
    tensors = _tensors_text(d.get("tensors"))
    if tensors:
        lines.append(f"- tensors (layer {d['tensors'].get('layer')}): {tensors}")
    lines += ["", *markdown_table(_moe_rows(moe), _moe_columns())]
    notes = [f"- note: {n}" for n in r.get("notes", [])] + [f"- **warning:** {w}" for w in d.get("warnings", [])]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"
