"""run-layer on N GPUs of one host: the layer sharded as vLLM shards it (TP, or EP with all-reduce,
or EP with an all-to-all), one process per GPU, torch.distributed over NCCL.

Launch: :func:`run_distributed` spawns one process per GPU itself (``spawn`` start method), or,
under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set), runs this process's rank in
place. Every process gets :data:`sharding.NO_MULTICAST_ENV` (NVLink multicast off) before NCCL
starts. Errors in any rank come back as ONE typed error in the parent (the other ranks are
terminated), so the CLI keeps its one-line, exit-2 contract.

Per rank and token count, with the same global tokens for every scheme:

* **route**: router GEMM + top-k (the same routing as one GPU with precomputed routing: :func:`route_tokens`) on the rank's
  tokens (all T when tokens are replicated, T/N under the all-to-all);
* **dispatch**: TP: nothing; EP all-reduce: selecting the (token, expert) pairs this rank owns;
  EP all-to-all: the plan (one device->host copy of the split sizes), then NCCL
  ``all_to_all_single`` of the hidden rows (bf16) and of the k ids + weights;
* **experts**: the FlashInfer kernel on the rank's shard. TP: the I/N slice of every expert, the
  same call as on one GPU. EP: FlashInfer's cuTile runners take no local expert offset/count
  (``supports_expert_parallelism`` is False for them in flashinfer-python 0.7.2.post1
  fused_moe/runners.py:762-774), so the rank's experts run as their own E_local-expert layer on
  the owned (token, expert) pairs with top-k 1 (ids rebased to the local range); the pairs'
  weighted outputs are summed per row with one index_add (inside this phase);
* **combine**: TP / EP all-reduce: NCCL all-reduce (bf16) of the [T, H] partial output;
  EP all-to-all: the partial rows go back with a second ``all_to_all_single`` and are added at
  the source.

Each phase is timed with CUDA events around it, over many iterations (ranks aligned by a barrier
before each), the median per rank, and the MAX over ranks is reported (the slowest rank sets the
layer's time). Bytes on the links: what the rank sends to OTHER ranks (all-reduce: NCCL's bus
bytes 2(N-1)/N·T·H·2).

The output is checked on rank 0 against the float32 reference of the WHOLE layer (full weights,
the routed ids/weights gathered from every rank), with the format's tolerance (reference.py).
"""

from __future__ import annotations

import os
import pickle
import queue as _queue
import socket
import statistics
import time
import traceback
from dataclasses import dataclass, replace
from typing import Callable

from .. import errors as E
from ..errors import BadInputError, EnvironmentError_, MoeInspectError, UnsupportedError
from .sharding import (NO_MULTICAST_ENV, ShardPlan, a2a_combine_bytes, a2a_dispatch_bytes, allreduce_bytes,
                       dispatch_plan, expert_owner, expert_ranges, local_pairs, slice_expert_tensors, slice_experts,
                       token_split, tp_slice)

PHASES = ("route", "dispatch", "experts", "combine")


# ----------------------------------------------------------------------------- launcher
def torchrun_env(env=None) -> tuple[int, int, int] | None:
    """(rank, world, local rank) when this process was started by torchrun, else None."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env and "LOCAL_RANK" in env:
        try:
            return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
        except ValueError:
            raise BadInputError(f"RANK={env['RANK']!r} WORLD_SIZE={env['WORLD_SIZE']!r}: not integers") from None
    return None


def is_primary(env=None) -> bool:
    """True in the process that prints (the parent, or torchrun rank 0)."""
    tr = torchrun_env(env)
    return tr is None or tr[0] == 0


def check_world(plan: ShardPlan, *, device_count: int, env=None) -> None:
    """One-line errors when the GPUs or the torchrun world do not match the layout."""
    tr = torchrun_env(env)
    if tr is not None:
        if tr[1] != plan.world:
            raise BadInputError(f"torchrun started {tr[1]} processes but {plan.layout_text} needs {plan.world} "
                                f"(--nproc-per-node {plan.world})")
        if tr[2] >= device_count:
            raise EnvironmentError_(f"LOCAL_RANK {tr[2]}: this host has {device_count} CUDA device(s)")
        return
    if device_count < plan.world:
        vis = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise EnvironmentError_(
            f"{plan.label} needs {plan.world} GPUs of one host; this machine has {device_count}"
            + (f" (CUDA_VISIBLE_DEVICES={vis})" if vis is not None else ""))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """Environment of one spawned rank: rendezvous + NVLink multicast off."""
    return {**NO_MULTICAST_ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
            "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)}


def _entry(rank: int, world: int, port: int, target, payload, q) -> None:
    """Process body: set the environment, run ``target(rank, world, payload, say)``, report."""
    os.environ.update(rank_env(rank, world, port))

    def say(msg: str) -> None:
        if rank == 0:
            q.put(("progress", rank, msg))

    try:
        res = target(rank, world, payload, say)
        # by value: torch's queue reducers would share tensors through this process's memory, gone once it exits
        q.put(("ok", rank, pickle.dumps(res)))
    except MoeInspectError as e:
        q.put(("error", rank, type(e).__name__, e.message))
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as one line
        kind = "EnvironmentError_" if type(e).__name__ == "OutOfMemoryError" else ""
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:400]
        if E.debug_enabled():
            msg += "\n" + traceback.format_exc()
        q.put(("error", rank, kind, f"rank {rank}: {msg}"))


def launch(world: int, target: Callable, payload, *, progress: Callable[[str], None] | None = None,
           timeout_s: float = 3600.0) -> list:
    """Run ``target(rank, world, payload, say)`` in ``world`` spawned processes; their results by rank.

    The first error from any rank terminates the others and is raised here as one typed error.
    """
    import multiprocessing as mp

    say = progress or (lambda m: None)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    saved = {k: os.environ.get(k) for k in NO_MULTICAST_ENV}
    os.environ.update(NO_MULTICAST_ENV)  # inherited by the spawned interpreters from their first instruction
    try:
        procs = [ctx.Process(target=_entry, args=(r, world, port, target, payload, q)) for r in range(world)]
        for p in procs:
            p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    results: dict[int, object] = {}
    deadline = time.monotonic() + timeout_s
    err = None
    try:
        while len(results) < world and err is None:
            try:
                msg = q.get(timeout=0.5)
            except _queue.Empty:
                if time.monotonic() > deadline:
                    err = EnvironmentError_(f"multi-GPU run did not finish within {timeout_s:.0f} s")
                    break
                dead = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode not in (None, 0) and r not in results]
                if dead:
                    # give a late error message a moment to arrive
                    try:
                        msg = q.get(timeout=2.0)
                    except _queue.Empty:
                        r, code = dead[0]
                        err = EnvironmentError_(f"rank {r} of {world} died (exit code {code}) without reporting")
                        break
                else:
                    continue
            if msg[0] == "progress":
                say(msg[2])
            elif msg[0] == "ok":
                results[msg[1]] = pickle.loads(msg[2])
            else:
                _, rank, kind, text = msg
                cls = getattr(E, kind, None) if kind else None
                if not (isinstance(cls, type) and issubclass(cls, MoeInspectError)):
                    cls = E.UnsupportedError
                err = cls(text if text.startswith("rank ") or world == 1 else f"rank {rank}: {text}")
    finally:
        for p in procs:
            if err is not None and p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    if err is not None:
        raise err
    return [results[r] for r in range(world)]


# ----------------------------------------------------------------------------- the sharded layer
class ShardedMoE:
    """One rank's part of the layer under one scheme. ``expert_call(x [M, H] bf16, ids [M, k] int32,
    wts [M, k] fp32) -> [M, H]`` runs this rank's expert shard (FlashInfer on GPU; any torch function
    in CPU tests); ``route(x) -> (ids, wts)`` routes tokens; ``dist`` is torch.distributed."""

    def __init__(self, scheme: str, *, rank: int, world: int, num_experts: int, top_k: int, hidden: int,
                 expert_call: Callable, route: Callable, dist, device, ep_range: tuple[int, int] | None = None):
        import torch

        self.scheme, self.rank, self.world = scheme, rank, world
        self.e, self.k, self.h = num_experts, top_k, hidden
        self.expert_call, self.route_fn, self.dist, self.device = expert_call, route, dist, device
        self.first, self.count = ep_range if ep_range is not None else (0, num_experts)
        self.owner = torch.tensor(expert_owner(num_experts, world), dtype=torch.long, device=device) \
            if scheme == "ep-a2a" else None
        self.last: dict = {}

    def forward(self, x, events=None):
        """Output rows for this rank's tokens ``x`` [T_r, H]; ``events`` = 5 CUDA events or None.

        ``self.last`` keeps the routed ids/weights and the byte counts of this call."""
        import torch

        def rec(i):
            if events is not None:
                events[i].record()

        t = x.shape[0]
        rec(0)
        if t:
            ids, wts = self.route_fn(x)
            ids, wts = ids.to(torch.int32), wts.float()
        else:
            ids = torch.zeros((0, self.k), dtype=torch.int32, device=x.device)
            wts = torch.zeros((0, self.k), dtype=torch.float32, device=x.device)
        rec(1)
        info = {"ids": ids, "wts": wts, "dispatch_bytes": 0, "combine_bytes": 0, "pairs": 0, "rows_in": t}
        if self.scheme == "tp":
            rec(2)
            out = self.expert_call(x, ids, wts) if t else torch.zeros((0, self.h), dtype=torch.bfloat16, device=x.device)
            rec(3)
            self.dist.all_reduce(out)
            info["combine_bytes"] = allreduce_bytes(t, self.h, self.world)
            info["pairs"] = t * self.k
            rec(4)
        elif self.scheme == "ep":
            row, slot, lid = local_pairs(ids, self.first, self.count)
            xp, wp = x[row], wts[row, slot]
            rec(2)
            part = self._experts(xp, lid, wp, row, t)
            rec(3)
            self.dist.all_reduce(part)
            info["combine_bytes"] = allreduce_bytes(t, self.h, self.world)
            info["pairs"] = int(row.numel())
            rec(4)
            out = part
        else:  # ep-a2a
            plan = dispatch_plan(ids, self.owner, self.world)
            send_counts = torch.tensor(plan.counts, dtype=torch.long, device=x.device)
            recv_counts_t = torch.empty_like(send_counts)
            self.dist.all_to_all_single(recv_counts_t, send_counts)
            recv_counts = [int(c) for c in recv_counts_t.tolist()]
            r = sum(recv_counts)
            send_x = x[plan.order].contiguous()
            meta = torch.cat((ids.contiguous().view(torch.float32), wts), dim=1)[plan.order].contiguous()
            recv_x = torch.empty((r, self.h), dtype=x.dtype, device=x.device)
            recv_meta = torch.empty((r, 2 * self.k), dtype=torch.float32, device=x.device)
            self.dist.all_to_all_single(recv_x, send_x, recv_counts, plan.counts)
            self.dist.all_to_all_single(recv_meta, meta, recv_counts, plan.counts)
            rids = recv_meta[:, :self.k].contiguous().view(torch.int32)
            rwts = recv_meta[:, self.k:]
            row, slot, lid = local_pairs(rids, self.first, self.count)
            xp, wp = recv_x[row], rwts[row, slot]
            rec(2)
            part = self._experts(xp, lid, wp, row, r)
            rec(3)
            back = torch.empty((int(plan.order.numel()), self.h), dtype=part.dtype, device=x.device)
            self.dist.all_to_all_single(back, part, plan.counts, recv_counts)
            out = torch.zeros((t, self.h), dtype=torch.float32, device=x.device)
            out.index_add_(0, plan.order, back.float())
            out = out.to(torch.bfloat16)
            rec(4)
            info.update(dispatch_bytes=a2a_dispatch_bytes(plan.counts, self.rank, self.h, self.k),
                        combine_bytes=a2a_combine_bytes(recv_counts, self.rank, self.h),
                        pairs=int(row.numel()), rows_in=r, send_counts=plan.counts, recv_counts=recv_counts)
        self.last = info
        return out

    def _experts(self, xp, lid, wp, row, rows):
        """This rank's experts on its (token, expert) pairs, summed per row -> [rows, H] bf16."""
        import torch

        part = torch.zeros((rows, self.h), dtype=torch.float32, device=xp.device)
        if row.numel():
            y = self.expert_call(xp.contiguous(), lid.to(torch.int32).unsqueeze(1).contiguous(),
                                 wp.float().unsqueeze(1).contiguous())
            part.index_add_(0, row, y.float())
        return part.to(torch.bfloat16)


# ----------------------------------------------------------------------------- the rank's work
@dataclass
class _Payload:
    opts: object  # RunLayerOptions
    shapes: object  # LayerShapes
    model_id: str | None
    model_path: str | None
    layer: int | None
    plans: list  # [ShardPlan]
    path: object  # KernelPath
    iters_min: int = 10


def route_tokens(shapes, logits, bias, *, arch: int):
    """(ids int32, weights fp32) as run-layer routes on one GPU with precomputed routing: FlashInfer's
    ``fused_topk_deepseek`` for grouped DeepSeekV3 where it runs, else our reference router."""
    import torch

    from ..kernels import fused_topk_deepseek as ftd
    from .runner import reference_route

    if (shapes.routing_method == "DeepSeekV3" and (shapes.n_group or 1) > 1
            and ftd.supported(arch, shapes.num_experts, shapes.top_k, shapes.n_group, shapes.topk_group)):
        # no host sync: this runs inside the timed "route" phase
        return ftd.run(logits, bias, n_group=shapes.n_group, topk_group=shapes.topk_group, top_k=shapes.top_k,
                       routed_scaling_factor=shapes.routed_scaling_factor, synchronize=False)
    r = reference_route(shapes, logits, bias)
    return r.topk_ids.to(torch.int32), r.topk_weights.float()


def _median(xs):
    return statistics.median(xs) if xs else 0.0


def _rank_work(rank: int, world: int, p: _Payload, say) -> dict:
    import datetime

    import torch
    import torch.distributed as dist

    from . import kernels as K
    from . import timing as T
    from .reference import compare, reference_moe, shared_expert_forward, tolerance_for
    from .weights import LayerWeights, load_checkpoint_layer, random_layer

    os.environ.update(NO_MULTICAST_ENV)
    tr = torchrun_env()
    local = tr[2] if tr is not None else rank
    torch.cuda.set_device(local)
    dev = torch.device("cuda", local)
    torch.backends.cuda.matmul.allow_tf32 = False
    dist.init_process_group("nccl", rank=rank, world_size=world, device_id=dev,
                            timeout=datetime.timedelta(seconds=900))
    try:
        return _rank_body(rank, world, p, say, dev, torch, dist, K, T, compare, reference_moe, shared_expert_forward,
                          tolerance_for, LayerWeights, load_checkpoint_layer, random_layer)
    finally:
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001
            pass


def _rank_weights(p: _Payload, dev, world: int, torch, dist, load_checkpoint_layer, random_layer):
    """The whole layer on this rank (checkpoint or seeded random), checked identical on every rank."""
    opts, shapes = p.opts, p.shapes
    if opts.weights == "checkpoint":
        from pathlib import Path

        w = load_checkpoint_layer(Path(p.model_path), shapes, opts.quant, layer=p.layer, device=dev)
    else:
        w = random_layer(shapes, opts.quant, seed=opts.seed, device=dev)
    # every rank must hold the same layer: compare a fingerprint
    fp = torch.stack([w.tensors["w1"][0].float().sum(), w.tensors["w2"][-1].float().sum(),
                      w.router_weight.float().sum()]).to(torch.float64)
    fps = [torch.zeros_like(fp) for _ in range(world)]
    dist.all_gather(fps, fp)
    if any(not torch.equal(fps[0], f) for f in fps):
        raise EnvironmentError_("the ranks generated different weights from the same seed (GPU models differ?)")
    return w


def _scheme_layers(p: _Payload, w, *, rank: int, world: int, dev, fi, dist, K, LayerWeights, route, say) -> list:
    """One ShardedMoE per scheme of ``p.plans``: [(plan, layer, shard expert bytes, shard shapes)]."""
    opts, shapes, path = p.opts, p.shapes, p.path
    hsz, k, e, inter = shapes.hidden_size, shapes.top_k, shapes.num_experts, shapes.intermediate_size
    layers = []
    for plan in p.plans:
        if plan.scheme == "tp":
            s, n = tp_slice(inter, plan.moe_tp, rank)
            rshapes = replace(shapes, intermediate_size=n)
            tensors = slice_expert_tensors(w.tensors, inter, plan.moe_tp, rank)
            ep_range = None
        else:
            first, count = expert_ranges(e, plan.moe_ep)[rank]
            rshapes = replace(shapes, num_experts=count, top_k=1, routing_method="Renormalize", n_group=None,
                              topk_group=None, routed_scaling_factor=None, has_bias=False, num_shared_experts=0,
                              shared_intermediate_size=None)
            tensors = slice_experts(w.tensors, e, first, count)
            ep_range = (first, count)
        rw = LayerWeights(opts.quant, rshapes, tensors, w.router_weight, w.router_bias)
        say(f"{plan.label}: preparing {path.config_class} shard")
        config = K.build_config(fi, path, rshapes)
        view = K.prepare_weight_view(fi, path, rw, device=dev, config=config)
        pack = K.make_weight_pack(fi, path, view)
        moe = fi.MoELayer(config, device=dev)

        def call(x, ids, wts, moe=moe, pack=pack, config=config):
            act = K.make_activation_pack(fi, path, config, x, mode="PackedPrecomputed", topk_ids=ids,
                                         topk_weights=wts)
            return moe(act, pack)

        layers.append((plan, ShardedMoE(plan.scheme, rank=rank, world=world, num_experts=e, top_k=k, hidden=hsz,
                                        expert_call=call, route=route, dist=dist, device=dev, ep_range=ep_range),
                       rw.expert_bytes(), rshapes))
        del tensors
    return layers


def _time_phases(layer, mine: list, *, iters_min: int, repeat_ms: float, dev, torch, dist) -> dict:
    """Per-phase medians (µs) of ``layer.forward`` over the token sets, ranks aligned by a barrier each
    iteration; the iteration count (same on every rank) sized to ~``repeat_ms`` after 3 iterations."""
    samples = {ph: [] for ph in PHASES + ("total",)}
    bytes_d, bytes_c, pairs = [], [], []
    est = None
    it, iters = 0, iters_min
    while it < iters:
        torch.cuda.synchronize()
        dist.barrier()
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(5)]
        layer.forward(mine[it % len(mine)], evs)
        evs[4].synchronize()
        ms = [evs[i].elapsed_time(evs[i + 1]) for i in range(4)]
        for ph, v in zip(PHASES, ms):
            samples[ph].append(v * 1000.0)
        samples["total"].append(evs[0].elapsed_time(evs[4]) * 1000.0)
        bytes_d.append(layer.last["dispatch_bytes"])
        bytes_c.append(layer.last["combine_bytes"])
        pairs.append(layer.last["pairs"])
        it += 1
        if it == 3 and est is None:  # size the run to ~repeat_ms, same count on every rank
            est_t = torch.tensor([_median(samples["total"])], device=dev)
            dist.all_reduce(est_t, op=dist.ReduceOp.MAX)
            est = float(est_t) / 1000.0
            iters = max(iters_min, min(200, int(repeat_ms / max(est, 1e-3))))
    stats = {ph: _median(v) for ph, v in samples.items()}
    stats.update(dispatch_bytes=_median(bytes_d), combine_bytes=_median(bytes_c), pairs=_median(pairs),
                 iterations=iters)
    return stats


def _rank0_accuracy(layer, out, plan, split, *, rank, world, x0, w, tol, dist, torch, compare, reference_moe,
                    shared_expert_forward) -> dict | None:
    """Gather the outputs and routing of every rank to rank 0 and compare with the whole layer's reference."""
    ids, wts = layer.last["ids"], layer.last["wts"]
    if plan.dp > 1:
        out, ids, wts = (_gather_rows(dist, t, split, world, torch) for t in (out, ids, wts))
    if rank != 0:
        return None
    got = out.float()
    if w.shared_w1 is not None:
        got = got + shared_expert_forward(x0, w.shared_w1, w.shared_w2)
    return compare(got, reference_moe(x0, ids, wts, w), tol).to_dict()


def _rank_body(rank, world, p, say, dev, torch, dist, K, T, compare, reference_moe, shared_expert_forward,
               tolerance_for, LayerWeights, load_checkpoint_layer, random_layer) -> dict:
    opts, shapes, path = p.opts, p.shapes, p.path
    major, minor = torch.cuda.get_device_capability(dev)
    arch = major * 10 + minor
    fi = K.flashinfer_namespace()
    say(f"{world} ranks: weights ({opts.quant})")
    t0 = time.perf_counter()
    w = _rank_weights(p, dev, world, torch, dist, load_checkpoint_layer, random_layer)
    load_s = time.perf_counter() - t0
    bias = w.router_bias.float() if w.router_bias is not None else None
    full_ebytes = w.expert_bytes()
    hsz, k, e = shapes.hidden_size, shapes.top_k, shapes.num_experts

    def route(x):
        return route_tokens(shapes, w.router_logits(x), bias, arch=arch)

    layers = _scheme_layers(p, w, rank=rank, world=world, dev=dev, fi=fi, dist=dist, K=K, LayerWeights=LayerWeights,
                            route=route, say=say)
    from .tuning import cache_file, cached_entries, tune_context, tuning_status

    tfile = cache_file(fi.version, arch)
    tstatus = tuning_status(opts.autotune, tfile, entries_before=cached_entries(tfile))

    def tctx():  # only rank 0 writes FlashInfer's autotune file; every rank reads it
        return tune_context(opts.autotune, tfile if (rank == 0 or not opts.autotune) else None)

    tol = tolerance_for(opts.quant, path.quantized_activations)
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    rows = []
    for n_tok in opts.tokens:
        g = torch.Generator(device=dev).manual_seed(opts.seed + 1 + n_tok)
        entry = {"tokens": n_tok, "schemes": []}
        for plan, layer, ebytes, rshapes in layers:
            # token sets: identical global tokens on every rank, cycled for a cold L2 as on one GPU
            # same count on every rank and for every scheme (per-rank share of the layer's bytes), so the
            # generator streams and hence the global tokens are identical everywhere
            g.manual_seed(opts.seed + 1 + n_tok)
            per_call = T.moe_bytes(min(e, n_tok * k), full_ebytes, n_tok, hsz, k) / world
            n_sets = T.token_sets_for_cold_l2(per_call, l2, cap=8)
            sets = [torch.randn((n_tok, hsz), generator=g, device=dev).to(torch.bfloat16) for _ in range(n_sets)]
            split = token_split(n_tok, plan.dp)
            lo, cnt = split[rank] if plan.dp > 1 else (0, n_tok)
            mine = [x[lo:lo + cnt] for x in sets]
            say(f"{plan.label} T={n_tok}: first calls ({n_sets} token sets)")
            t1 = time.perf_counter()
            with tctx():
                for x in mine:  # compile / warm every shape variant (and tune, with --autotune)
                    layer.forward(x)
            torch.cuda.synchronize()
            first_s = time.perf_counter() - t1
            # accuracy on set 0
            acc = _rank0_accuracy(layer, layer.forward(mine[0]), plan, split, rank=rank, world=world, x0=sets[0], w=w,
                                  tol=tol, dist=dist, torch=torch, compare=compare, reference_moe=reference_moe,
                                  shared_expert_forward=shared_expert_forward)
            say(f"{plan.label} T={n_tok}: timing")
            mine_stats = _time_phases(layer, mine, iters_min=p.iters_min, repeat_ms=opts.repeat_ms, dev=dev,
                                      torch=torch, dist=dist)
            mine_stats.update(first_call_s=first_s, token_sets=n_sets, tokens_local=cnt)
            per_rank = [None] * world
            dist.all_gather_object(per_rank, mine_stats)
            if rank == 0:
                entry["schemes"].append(_scheme_row(plan, per_rank, acc, n_tok, hsz, k))
            del sets, mine
            torch.cuda.empty_cache()
        rows.append(entry)
    if rank != 0:
        return {}
    return {
        "arch": arch, "device": torch.cuda.get_device_name(dev), "world": world,
        "versions": {"flashinfer": fi.version, "torch": torch.__version__, "cuda": torch.version.cuda,
                     "nccl": _nccl_version(torch)},
        "load_s": round(load_s, 2), "rows": rows, "weights_source": w.source, "tuning": tstatus,
    }


def _nccl_version(torch) -> str:
    v = torch.cuda.nccl.version()
    return ".".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


def _gather_rows(dist, t, split, world, torch):
    """Concatenate every rank's rows of ``t`` (uneven counts) on every rank."""
    m = max(c for _, c in split)
    pad = torch.zeros((m, *t.shape[1:]), dtype=t.dtype, device=t.device)
    pad[:t.shape[0]] = t
    bufs = [torch.empty_like(pad) for _ in range(world)]
    dist.all_gather(bufs, pad)
    return torch.cat([bufs[r][:c] for r, (_, c) in enumerate(split)])


def _scheme_row(plan: ShardPlan, per_rank: list[dict], acc, tokens: int, hidden: int, top_k: int) -> dict:
    """Max over ranks per phase, bytes, link bandwidth."""
    phases = {ph: max(r[ph] for r in per_rank) for ph in PHASES + ("total",)}
    if plan.scheme == "ep-a2a":
        moved = {"dispatch": max(r["dispatch_bytes"] for r in per_rank),
                 "combine": max(r["combine_bytes"] for r in per_rank)}
        link = {ph: (moved[ph] / (phases[ph] * 1e-6) / 1e9 if phases[ph] > 0 else None) for ph in moved}
    else:
        moved = {"dispatch": 0, "combine": max(r["combine_bytes"] for r in per_rank)}
        link = {"dispatch": None,
                "combine": moved["combine"] / (phases["combine"] * 1e-6) / 1e9 if phases["combine"] > 0 else None}
    return {
        "scheme": plan.scheme, "label": plan.label, "layout": plan.layout_text, "accuracy": acc,
        "phases_us": phases, "bytes": moved, "link_gbs": link, "per_rank": per_rank,
    }


# ----------------------------------------------------------------------------- entry point
def _check_shards(plans, path, shapes, quant: str) -> None:
    """Every rank's shard must be a shape the kernel takes (no GPU work)."""
    from .kernels import check_kernel_shapes, check_layer_support
    from .weights import check_quant_shapes

    for pl in plans:
        if pl.scheme == "tp":
            _, n = tp_slice(shapes.intermediate_size, pl.moe_tp, 0)
            rs = replace(shapes, intermediate_size=n)
            check_quant_shapes(rs, quant)
            check_kernel_shapes(path, rs, "PackedPrecomputed")
        else:
            for first, count in expert_ranges(shapes.num_experts, pl.moe_ep):
                rs = replace(shapes, num_experts=count, top_k=1, routing_method="Renormalize", n_group=None,
                             topk_group=None)
                check_kernel_shapes(path, rs, "PackedPrecomputed")
        check_layer_support(path, shapes)


def _notes(shapes, path, plans, tuning_note: str) -> list[str]:
    """What the multi-GPU numbers include and how they were made, for the result."""
    notes = [
        "routed experts only in the timing; " + ("the shared expert is computed with torch (bf16) and added "
                                                "before the check" if shapes.num_shared_experts else "no shared expert"),
        "route = router GEMM + top-k as on one GPU ("
        + ("flashinfer fused_topk_deepseek" if shapes.routing_method == "DeepSeekV3" and (shapes.n_group or 1) > 1
           else "moe_inspect reference router in torch, not a fused kernel") + ")",
        "EP: FlashInfer's cuTile runners take no local expert offset, so each rank's experts run as an "
        "E_local-expert FlashInfer layer over its (token, expert) pairs with top-k 1; the per-row sums are "
        "inside 'experts'" if path.backend == "cutile" and any(pl.scheme != "tp" for pl in plans) else None,
        "all-to-all: NCCL all_to_all_single of bf16 rows + k ids/weights, split sizes copied to the host "
        "first (one sync per dispatch); vLLM's default all2all backend (allgather_reducescatter) would "
        "all-gather every token to every rank instead" if any(pl.scheme == "ep-a2a" for pl in plans) else None,
        "phase times: eager (host launch gaps included, no CUDA graph: the all-to-all needs its split sizes on "
        "the host), CUDA events, median over iterations per rank, max over ranks; a rank's combine includes "
        "waiting for the slowest rank's experts; link GB/s = bytes a rank sends to other ranks / phase time "
        "(all-reduce: NCCL bus bytes 2(N-1)/N·T·H·2)",
        tuning_note,
    ]
    return [n for n in notes if n]


def run_distributed(opts, plan: ShardPlan, *, compare: bool = False, progress: Callable[[str], None] | None = None,
                    describe: Callable | None = None) -> dict:
    """Run the layer sharded per ``plan`` (and its TP/EP companion when ``compare``); the result dict.

    Checks on this process first (no GPU work): options, shapes per rank, the kernel path, the GPU
    count or the torchrun world; then spawns the ranks (or runs this torchrun rank).
    """
    from .runner import check_options, cuda_arch, plan as plan_path, resolve_shapes
    from .sharding import companion

    say = progress or (lambda m: None)
    check_options(opts)
    if opts.plot:
        raise BadInputError("--plot is for one GPU; drop it with --tp/--ep")
    shapes, desc, layer = resolve_shapes(opts, describe=describe)
    grouped = shapes.routing_method == "DeepSeekV3" and (shapes.n_group or 1) > 1
    if opts.routing_impl == "kernel" and not grouped:
        raise UnsupportedError(f"--routing kernel with --tp/--dp/--ep: the multi-GPU layer routes {shapes.routing_method} "
                               "with our reference router (only grouped DeepSeekV3 goes through FlashInfer's "
                               "fused_topk_deepseek); drop --routing or use --routing reference")
    plans = [plan] + ([companion(plan)] if compare else [])
    arch, dev_name = cuda_arch()
    import torch

    check_world(plan, device_count=torch.cuda.device_count())
    popts = replace(opts, precomputed_routing=True)  # the ids feed the dispatch
    path, _ = plan_path(popts, shapes, arch)
    _check_shards(plans, path, shapes, opts.quant)
    if shapes.expert_bias:
        raise BadInputError("expert GEMM biases: the multi-GPU layer does not shard them (no FlashInfer runner here "
                            "takes them)")
    payload = _Payload(popts, shapes, desc.model.id if desc else None,
                       str(desc.model.path) if desc is not None and desc.model.path else None,
                       layer, plans, path)
    tr = torchrun_env()
    if tr is not None:
        res = _rank_work(tr[0], tr[1], payload, say)
    else:
        res = launch(plan.world, _rank_work, payload, progress=say)[0]
    if not res:
        return {}
    passed = all(s["accuracy"] and s["accuracy"]["passed"] for r in res["rows"] for s in r["schemes"])
    notes = _notes(shapes, path, plans, res["tuning"]["note"])
    return {
        "model": desc.model.id if desc else None, "layer": layer, "shapes": shapes.to_dict(), "quant": opts.quant,
        "path": path.to_dict(), "plans": [pl.to_dict() for pl in plans],
        "gpu": {"name": res["device"], "arch": res["arch"], "count": res["world"]},
        "versions": res["versions"], "weights": {"source": res["weights_source"], "load_s": res["load_s"]},
        "tuning": res["tuning"],
        "launcher": "torchrun" if tr is not None else "spawn",
        "env": dict(NO_MULTICAST_ENV),
        "rows": res["rows"], "passed": passed, "verdict": "pass" if passed else "fail",
        "notes": notes,
    }
