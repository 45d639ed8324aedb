"""The hardware record in reports: the machine line of a run's header, the provider that ran each model, INT8 files
made for another CPU, the run's warnings, the CPU a verdict holds for, and what differs between two runs' hardware
(the multi-run page marks the cells it touches).

A speed depends on the whole machine (CPU model, cores, instruction sets, GPU, the execution provider that ran).
An INT8 or FP16 variant's quality depends on the instruction sets and the provider too: on x86 without VNNI the
u8s8 kernels can saturate, so the same INT8 file scores lower there than on a VNNI CPU. A full-precision model's
quality does not change with the CPU.
"""

from __future__ import annotations

import json

from ...provenance import int8_target, isa_summary

VARIANT_KINDS = ("int8", "fp16")  # variants whose vectors depend on the CPU's instructions and the provider
TARGET_WORDS = {"vnni": "VNNI", "avx2": "AVX2 without VNNI", "x86-64": "x86-64 without AVX2", "i8mm": "ARM i8mm",
                "dotprod": "ARM dot-product", "neon": "ARM NEON"}  # fmt: skip


def isa_text(m: dict | None) -> str:
    """``AVX2, no VNNI``: the record's ISA summary (computed from its flags for a record that has none)."""
    m = m or {}
    if m.get("isa_summary"):
        return m["isa_summary"]
    return isa_summary(m.get("family"), m["isa"]) if "isa" in m else "ISA flags not recorded"


def target_class(target: str | None) -> str | None:
    """An INT8 target as ``provenance.int8_target`` names it: ``avx512-vnni`` / ``amx`` -> ``vnni``, ``avx512`` ->
    ``avx2`` (no VNNI); None for none or ``auto``."""
    t = (target or "").strip().lower()
    if not t or t == "auto":
        return None
    if "vnni" in t or "amx" in t:
        return "vnni"
    return "avx2" if t.startswith("avx") else t


def machine_target(m: dict | None) -> str | None:
    """The INT8 kernel class of the machine a run ran on; None where the record has no ISA flags."""
    m = m or {}
    if m.get("int8_target"):
        return m["int8_target"]
    return int8_target(m.get("family"), m["isa"]) if "isa" in m else None


def short_provider(p: str | None) -> str:
    return (p or "?").replace("ExecutionProvider", "")


def providers_ran(manifest: dict, cost: dict | None = None) -> dict[str, str]:
    """Model -> the execution provider that ran it (the session's first active provider, after any fallback), from
    the manifest, else from cost.json."""
    out = {}
    for name, d in (manifest.get("models") or {}).items():
        if d.get("providers_active"):
            out[name] = short_provider(d["providers_active"][0])
    for name, c in ((cost or {}).get("models") or {}).items():
        ran = c.get("provider") or (c.get("providers") or [None])[0]
        if name not in out and ran:
            out[name] = short_provider(ran)
    return out


def gpu_text(m: dict) -> str:
    gpus = m.get("gpus") or []
    return (
        ", ".join(g.get("name", "?") + (f" ({g['memory_mb']} MB)" if g.get("memory_mb") else "") for g in gpus)
        or "none"
    )


def cpu_text(m: dict) -> str:
    """``AMD EPYC 7B12 64-Core Processor, 2 cores``: the CPU model and the cores the run could use."""
    usable, total = m.get("cpus_usable"), m.get("cpus")
    cores = f"{usable} of {total} cores" if usable and total and usable != total else f"{usable or total or '?'} cores"
    return f"{m.get('cpu_model') or 'CPU model not recorded'}, {cores}"


def machine_line(m: dict | None, ran: dict[str, str] | None = None) -> str:
    """One line for a report header: CPU, cores, ISA flags, onnxruntime and the provider that ran, GPU."""
    if not m:
        return "Machine: not recorded."
    ran_on = sorted(set((ran or {}).values()))
    available = ", ".join(short_provider(p) for p in m.get("providers") or []) or "?"
    prov = f"ran on {', '.join(ran_on)} (available: {available})" if ran_on else f"providers available: {available}"
    return (f"Machine: {cpu_text(m)}; {isa_text(m)}; onnxruntime {m.get('onnxruntime') or '?'}, {prov}; "
            f"GPU: {gpu_text(m)}.")  # fmt: skip


def int8_recipe(results: dict, manifest: dict | None, name: str) -> dict | None:
    """The INT8 recipe record of a variant (results["variants"], else the manifest's model entry), or None."""
    rec = ((results.get("variants") or {}).get(name) or {}).get("int8_recipe")
    rec = rec or (((manifest or {}).get("models") or {}).get(name) or {}).get("int8_recipe")
    if isinstance(rec, str):
        try:
            rec = json.loads(rec)
        except ValueError:
            return None
    return rec if isinstance(rec, dict) else None


def recipe_mismatch(recipe: dict | None, m: dict | None) -> str | None:
    """Why an INT8 file was made for another CPU than ``m``: ``made for VNNI, run on AVX2, no VNNI``; None when it
    was made for this kind of CPU, or either side is not recorded.

    The recorded ``target_isa`` decides (a file made elsewhere for this CPU, ``--target avx2``, is not flagged);
    without one, the ISA summary of the CPU it was chosen on."""
    if not recipe or not m:
        return None
    chosen = recipe.get("chosen_on") or {}
    made_on = chosen.get("isa_summary")
    where = f" (chosen on {chosen.get('cpu_model') or '?'}: {made_on})" if made_on else ""
    target, here = target_class(recipe.get("target_isa")), machine_target(m)
    if target and here:
        return None if target == here else f"made for {TARGET_WORDS.get(target, target)}{where}, run on {isa_text(m)}"
    if made_on and ("isa_summary" in m or "isa" in m) and made_on != isa_text(m):
        return f"made on {chosen.get('cpu_model') or 'another CPU'} ({made_on}), run on {isa_text(m)}"
    return None


def note_lines(results: dict, manifest: dict | None) -> list[str]:
    """The lines under a run's header: the run's warnings (a variant's low agreement...), then each INT8 variant
    made for another CPU than the one the run ran on."""
    lines = [str(w) for w in results.get("warnings") or []]
    m = (manifest or {}).get("machine")
    for name in results.get("models") or []:
        why = recipe_mismatch(int8_recipe(results, manifest, name), m)
        if why:
            lines.append(f"{name}: INT8 file {why}; its agreement and speed here may differ from where it was made.")
    return lines


def variant_kind(results: dict, manifest: dict | None, name: str) -> str | None:
    """``int8``, ``fp16``... of a model in a run (the manifest, else the run's variants, else the name's suffix)."""
    kind = (((manifest or {}).get("models") or {}).get(name) or {}).get("variant")
    kind = kind or ((results.get("variants") or {}).get(name) or {}).get("variant")
    if not kind and "." in name and name.rsplit(".", 1)[1] in VARIANT_KINDS:
        kind = name.rsplit(".", 1)[1]
    return kind


def cpu_clause(results: dict, manifest: dict | None) -> str:
    """The sentence a verdict gets where the run holds an INT8 variant: ``This holds on this CPU (AVX2, no VNNI):
    ...``; empty otherwise, or where the run recorded no machine."""
    m = (manifest or {}).get("machine")
    if not m or not any(variant_kind(results, manifest, n) == "int8" for n in results.get("models") or []):
        return ""
    return (f"This holds on this CPU ({isa_text(m)}): INT8 quality and speed change with the CPU's instructions "
            f"({m.get('cpu_model') or 'CPU model not recorded'}).")  # fmt: skip


def hardware_difference(letter: str, m: dict | None, ma: dict | None, ran: str | None, ran_a: str | None,
                        speed: bool) -> str:  # fmt: skip
    """Why a figure of run ``letter`` (machine ``m``, provider ``ran``) was measured on other hardware than run A's
    (``ma``, ``ran_a``), as a cell's title; empty when it was not. ``speed``: a speed figure, which every part of the
    machine moves; otherwise a variant's quality, which only the instruction sets and the provider move."""
    if not m or not ma:
        return ""
    out = []
    if isa_text(m) != isa_text(ma):
        out.append(f"measured on a different CPU: {letter}: {isa_text(m)} vs A: {isa_text(ma)}")
    elif speed and (cpu_text(m), gpu_text(m)) != (cpu_text(ma), gpu_text(ma)):
        gpu = f", GPU {gpu_text(m)}" if gpu_text(m) != gpu_text(ma) else ""
        gpu_a = f", GPU {gpu_text(ma)}" if gpu else ""
        out.append(f"measured on a different machine: {letter}: {cpu_text(m)}{gpu} vs A: {cpu_text(ma)}{gpu_a}")
    if ran and ran_a and ran != ran_a:
        out.append(f"run on a different execution provider: {letter}: {ran} vs A: {ran_a}")
    return "; ".join(out)


def recipe_text(recipe: dict | None) -> str:
    """An INT8 recipe record in a few words: ``u8s8+reduce_range for AVX2 without VNNI; mean cosine 0.947 to FP32
    on calibration images (target 0.97, not reached: ...)``; ``–`` for none."""
    if not recipe:
        return "–"
    target = target_class(recipe.get("target_isa"))
    out = f"{recipe.get('recipe') or '?'}" + (f" for {TARGET_WORDS.get(target, target)}" if target else "")
    agree = recipe.get("agreement") or {}
    if agree:
        if agree.get("measured") is False or agree.get("mean_cosine") is None:
            out += "; agreement not measured (made for another CPU)"
        else:
            out += f"; mean cosine {agree['mean_cosine']:.3f} to FP32 on {agree.get('where') or 'calibration images'}"
            if agree.get("target") is not None:
                out += f" (target {agree['target']:g}"
                out += ", reached)" if recipe.get("reached") else ", not reached)"
    if recipe.get("reached") is False and recipe.get("reason"):
        out += f": {recipe['reason']}"
    return out
