"""FLOP per generation of every registered model at its default setting, per role (TFLOP).

    python benchmarks/flop_table.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profilers.flops.profile import profile  # noqa: E402
from scaling.app.commands._common import describe_setting  # noqa: E402
from scaling.registry import list_models  # noqa: E402
from scaling.settings import make_setting  # noqa: E402


def main() -> int:
    print("| model | default setting | text encoder | denoiser | decoder | vocoder | total |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for spec in list_models():
        setting = make_setting(spec)
        prof = profile(setting)
        roles = prof.by_role()

        def tflop(role: str) -> str:
            return f"{roles[role] / 1e12:,.1f}" if role in roles else "-"

        print(f"| {spec.id} | {describe_setting(setting)}, {setting.steps} steps, {'CFG' if setting.cfg else 'no CFG'} "
              f"| {tflop('text_encoder')} | {tflop('denoiser')} | {tflop('decoder')} | {tflop('vocoder')} "
              f"| {prof.total_flop / 1e12:,.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
