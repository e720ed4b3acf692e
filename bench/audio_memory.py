"""Benchmark: peak memory and time of decoding + resampling audio, zoo's soxr path versus torchaudio's.

Each case runs in its own child process (peak RSS from ``os.wait4``), side by side in one run:

- ``awkward rate``: 1 s of audio recorded at 22,051 Hz (coprime with 16 kHz) to 16 kHz. torchaudio's sinc
  resampler builds kernels of ``rate / gcd(rate, 16000)`` taps: gigabytes for one second.
- ``long file`` (``--long``): an hour of 48 kHz audio given to an encoder that takes 300 s (Whisper with
  10 chunks). Decoding it whole first (what soundfile.read + torchaudio do) versus ``load_audio`` with the
  encoder's limit, which refuses it from the header.

    python bench/audio_memory.py [--rate 22051] [--long]

The torchaudio case of the awkward rate takes about 30 s and 6 GB; the machine is shared, so run it once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

MAKE_WAV = """
import sys, numpy as np, soundfile
rate, seconds, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
    for start in range(0, int(rate * seconds), rate * 60):
        n = min(rate * 60, int(rate * seconds) - start)
        f.write((0.3 * np.sin(np.arange(start, start + n) * 0.05)).astype("float32"))
"""
TORCHAUDIO = """
import sys, soundfile, torch, torchaudio.functional
waveform, rate = soundfile.read(sys.argv[1], dtype="float32")
print(torchaudio.functional.resample(torch.from_numpy(waveform), rate, 16000).shape[0])
"""
ZOO = """
import sys
from zoo.errors import MediaError
from zoo.media import load_audio
try:
    print(load_audio(sys.argv[1], 16000, max_seconds=float(sys.argv[2])).shape[0])
except MediaError as error:
    print("refused:", str(error)[:90])
"""


def measure(code: str, *args: str) -> tuple[float, float, str]:
    """Seconds, peak RSS (MiB) and output of ``code`` run in a child interpreter."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    output = child.stdout.read().strip() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        output = f"failed (exit {os.waitstatus_to_exitcode(status)}) {output}"
    return seconds, usage.ru_maxrss / 1024, output


def report(case: str, rows: list[tuple[str, tuple[float, float, str]]]) -> None:
    print(f"\n{case}")
    for method, (seconds, mib, output) in rows:
        print(f"  {method:<24} {seconds:7.2f} s  {mib:8.0f} MiB peak RSS   -> {output}")
    (_, (s0, m0, _)), (_, (s1, m1, _)) = rows
    print(f"  ratio torchaudio / zoo: time {s0 / s1:.0f}x, peak memory {m0 / m1:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=22_051)
    parser.add_argument("--long", action="store_true", help="also the hour of 48 kHz audio (690 MB on disk)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        short = os.path.join(folder, "short.wav")
        subprocess.run([sys.executable, "-c", MAKE_WAV, str(args.rate), "1", short], check=True)
        baseline = measure("import numpy, soundfile, zoo.media")
        print(f"interpreter with numpy + soundfile + zoo.media: {baseline[1]:.0f} MiB peak RSS")
        report(f"1 s at {args.rate} Hz -> 16 kHz", [
            ("soundfile + torchaudio", measure(TORCHAUDIO, short)),
            ("zoo.media.load_audio", measure(ZOO, short, "3600")),
        ])  # fmt: skip
        if args.long:
            long = os.path.join(folder, "hour.wav")
            subprocess.run([sys.executable, "-c", MAKE_WAV, "48000", "3600", long], check=True)
            report("1 h at 48 kHz, encoder limit 300 s", [
                ("soundfile + torchaudio", measure(TORCHAUDIO, long)),
                ("zoo.media.load_audio", measure(ZOO, long, "300")),
            ])  # fmt: skip
            report("1 h at 48 kHz, decoded whole (limit 3600 s)", [
                ("soundfile + torchaudio", measure(TORCHAUDIO, long)),
                ("zoo.media.load_audio", measure(ZOO, long, "3600")),
            ])  # fmt: skip


if __name__ == "__main__":
    main()
