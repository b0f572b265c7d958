"""xares-mini music tasks from fluidsynth and the FluidR3 General-MIDI soundfont: instruments and piano notes.

Every task is written as ONE MIDI file (mido), rendered by ONE fluidsynth call, and cut at the notes' known
times: MIDI times are whole milliseconds (1 tick = 1 ms), so each cut lands on an exact sample at 16 kHz.
"""

from __future__ import annotations

import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from .common import SR, Sample, SuiteBuildError, TaskBuild, count, normalise, require, require_file, resample, rng_for

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
SOURCES = [
    {"name": "FluidR3_GM.sf2 (fluid-soundfont-gm)", "package": "fluid-soundfont-gm", "licence": "MIT"},
    {"name": "FluidSynth", "package": "fluidsynth", "licence": "LGPL-2.1+ (used as a renderer only)"},
]
SPLITS = ("train", "valid", "test")

# (class name, General-MIDI program (0-based), lowest pitch of its 25-semitone span, within the instrument's range)
INSTRUMENTS = [
    ("acoustic_grand_piano", 0, 48),  # C3..C5
    ("nylon_guitar", 24, 45),  # A2..A4
    ("violin", 40, 57),  # A3..A5
    ("trumpet", 56, 55),  # G3..G5
    ("flute", 73, 62),  # D4..D6
    ("church_organ", 19, 48),  # C3..C5
    ("marimba", 12, 57),  # A3..A5
    ("acoustic_bass", 32, 28),  # E1..E3
]
SPAN = 25
NOTE_MS, CLIP_MS, SLOT_MS = 800, 1000, 2500  # held 0.8 s, cut to 1.0 s, one every 2.5 s (an organ release fades by ~50 dB)

PIANO_LOW, PIANO_HIGH = 55, 78  # mini_notes pitch classes: MIDI 55 (G3) .. 78 (F#5), 24 classes
GAP_MS = 1000  # silence between two mini_notes clips in the rendering


def pitch_split(pitch: int) -> str:
    """The split a pitch belongs to, the same for every instrument: test and valid pitches are never trained on."""
    return {2: "test", 4: "valid"}.get(pitch % 5, "train")


def _check_tools() -> str:
    exe = require("fluidsynth", "fluidsynth")
    require_file(SOUNDFONT, "fluid-soundfont-gm")
    return exe


@lru_cache(maxsize=4)
def _has_quiet(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--quiet" in out.stdout + out.stderr


def _midi(notes: list[tuple[int, int, int, int, int]], programs: dict[int, int], end_ms: int):
    """A MIDI file (1 tick = 1 ms) of ``notes`` = (on_ms, off_ms, channel, pitch, velocity)."""
    import mido

    events = [(0, 0, ch, 0, mido.Message("program_change", channel=ch, program=p)) for ch, p in sorted(programs.items())]
    for on, off, ch, pitch, vel in notes:
        events.append((off, 1, ch, pitch, mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
        events.append((on, 2, ch, pitch, mido.Message("note_on", channel=ch, note=pitch, velocity=vel)))
    events.sort(key=lambda e: e[:4])  # at one tick: program changes, then note-offs, then note-ons
    mf = mido.MidiFile(ticks_per_beat=1000)
    track = mido.MidiTrack()
    mf.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))  # 60 bpm: 1000 ticks = 1 s
    now = 0
    for tick, _, _, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    # a harmless controller message at the end keeps the player running through the last release
    track.append(mido.Message("control_change", channel=0, control=121, value=0, time=max(0, end_ms - now)))
    track.append(mido.MetaMessage("end_of_track", time=0))
    return mf


def render(notes: list[tuple[int, int, int, int, int]], programs: dict[int, int], end_ms: int) -> np.ndarray:
    """Render ``notes`` (see :func:`_midi`) with one fluidsynth call: mono float32 at SR, at least ``end_ms`` long.

    Reverb and chorus are off, so the cuts hold only the instrument (and no tail of a neighbouring note);
    output is 32-bit float, so no dither noise and identical bytes on every run.
    """
    exe = _check_tools()
    with tempfile.TemporaryDirectory(prefix="xares-mini-music-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        _midi(notes, programs, end_ms).save(mid)
        cmd = [exe, "-ni", *(["-q"] if _has_quiet(exe) else []), "-R", "0", "-C", "0", "-g", "1.0", "-r", str(SR)]
        cmd += ["-T", "wav", "-O", "float", "-F", str(wav), str(SOUNDFONT), str(mid)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.is_file():
            raise SuiteBuildError(f"fluidsynth failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    audio = resample(audio, sr, SR)
    need = end_ms * SR // 1000
    if audio.size < need:
        audio = np.pad(audio, (0, need - audio.size))
    return audio


def _cut(audio: np.ndarray, start_ms: int, length_ms: int) -> np.ndarray:
    a, n = start_ms * SR // 1000, length_ms * SR // 1000
    return audio[a : a + n].copy()


def build_instruments(size: str, seed: int) -> TaskBuild:
    """Single notes of 8 General-MIDI instruments (NSynth-like): clip classification, split by pitch."""
    _check_tools()
    rng = rng_for(seed, "mini_instrument")
    per_split = {"train": count(size, 27, minimum=3), "valid": count(size, 9, minimum=3), "test": count(size, 9, minimum=3)}
    plan: dict[str, list[tuple[int, int, int]]] = {s: [] for s in SPLITS}  # split -> (instrument index, pitch, velocity)
    for i, (_, _, low) in enumerate(INSTRUMENTS):
        for split in SPLITS:
            pitches = [p for p in range(low, low + SPAN) if pitch_split(p) == split]
            order: list[int] = []
            while len(order) < per_split[split]:
                order += [pitches[j] for j in rng.permutation(len(pitches))]
            for pitch in order[: per_split[split]]:
                plan[split].append((i, pitch, int(rng.integers(50, 121))))
    for split in SPLITS:
        plan[split] = [plan[split][j] for j in rng.permutation(len(plan[split]))]

    notes, slots = [], []
    for split in SPLITS:
        for i, pitch, vel in plan[split]:
            start = len(slots) * SLOT_MS + 100
            notes.append((start, start + NOTE_MS, i, pitch, vel))  # channel = instrument index (0..7, never drums)
            slots.append(start)
    audio = render(notes, {i: prog for i, (_, prog, _) in enumerate(INSTRUMENTS)}, len(slots) * SLOT_MS + 200)

    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    k = 0
    for split in SPLITS:
        for n, (i, pitch, vel) in enumerate(plan[split]):
            clip = normalise(_cut(audio, slots[k], CLIP_MS), float(rng.uniform(0.5, 0.9)))
            k += 1
            name, program, _ = INSTRUMENTS[i]
            meta = {"instrument": name, "program": program, "pitch": pitch, "velocity": vel}
            splits[split].append(Sample(f"{split}_{n:05d}", clip, meta))
    classes = [name for name, _, _ in INSTRUMENTS]
    card = {
        "name": "mini_instrument",
        "formal_name": "Mini instruments (FluidR3 GM)",
        "domain": "music",
        "task_type": "clip",
        "metric": "accuracy",
        "knn": True,
        "description": (
            "Single 1 s notes (held 0.8 s, cut with the release) of 8 General-MIDI instruments rendered by fluidsynth "
            "from the FluidR3 soundfont, at random velocities over two octaves of each instrument's range. Split by "
            "pitch: test and valid pitches are never heard in training (pitch mod 5 = 2: test, 4: valid). "
            "Label: json field 'instrument'."
        ),
        "labels": {"kind": "class_name", "field": "instrument", "num_classes": len(classes), "classes": classes},
        "probe": {"epochs": 20, "learning_rate": 0.005, "batch_size": 32, "batch_size_encode": 16},
    }
    return TaskBuild(card=card, splits=splits, sources=[dict(s) for s in SOURCES])


def _melody(rng: np.random.Generator, length_ms: int) -> list[tuple[int, int, int, int]]:
    """Random piano notes (on_ms, off_ms, pitch, velocity) inside a clip: a melody with occasional 2-note chords."""
    notes = []
    t = int(rng.integers(100, 401))
    prev = int(rng.integers(PIANO_LOW, PIANO_HIGH + 1))
    while t + 150 <= length_ms - 20:
        dur = min(int(rng.integers(150, 801)), length_ms - 20 - t)
        if rng.random() < 0.5:
            pitch = int(rng.integers(PIANO_LOW, PIANO_HIGH + 1))
        else:  # a step from the previous note, reflected at the range's ends
            pitch = prev + int(rng.integers(-5, 6))
            pitch = 2 * PIANO_LOW - pitch if pitch < PIANO_LOW else 2 * PIANO_HIGH - pitch if pitch > PIANO_HIGH else pitch
        vel = int(rng.integers(55, 111))
        notes.append((t, t + dur, pitch, vel))
        if rng.random() < 0.15:  # a chord: a second note a third, fourth, fifth, sixth or octave away
            interval = int(rng.choice([3, 4, 5, 7, 8, 9, 12]))
            second = pitch + interval if pitch + interval <= PIANO_HIGH else pitch - interval
            if PIANO_LOW <= second <= PIANO_HIGH:
                notes.append((t, t + dur, second, max(40, vel - int(rng.integers(0, 20)))))
        prev = pitch
        t += dur + int(rng.integers(0, 251))
    return notes


def build_notes(size: str, seed: int) -> TaskBuild:
    """Piano melodies (MAESTRO-like): frame-level note detection over 24 pitches, labels as note events."""
    _check_tools()
    rng = rng_for(seed, "mini_notes")
    per_split = {"train": count(size, 72, minimum=4), "valid": count(size, 24, minimum=2), "test": count(size, 24, minimum=2)}
    clips = []  # (split, start_ms, length_ms, notes)
    notes_all = []
    now = 0
    for split in SPLITS:
        for _ in range(per_split[split]):
            length = int(rng.integers(400, 601)) * 10  # 4.0 .. 6.0 s
            melody = _melody(rng, length)
            clips.append((split, now, length, melody))
            notes_all += [(now + on, now + off, 0, pitch, vel) for on, off, pitch, vel in melody]
            now += length + GAP_MS
    audio = render(notes_all, {0: 0}, now)

    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for split, start, length, melody in clips:
        clip = normalise(_cut(audio, start, length), float(rng.uniform(0.5, 0.9)))
        events = [{"start": on / 1000, "end": off / 1000, "note": pitch} for on, off, pitch, _ in sorted(melody)]
        splits[split].append(Sample(f"{split}_{len(splits[split]):05d}", clip, events))
    classes = [str(p) for p in range(PIANO_LOW, PIANO_HIGH + 1)]
    card = {
        "name": "mini_notes",
        "formal_name": "Mini piano notes (FluidR3 GM)",
        "domain": "music",
        "task_type": "frame",
        "metric": "segmentf1_micro",
        "metric_args": {"segment_length_in_s": 0.1},
        "knn": False,
        "description": (
            f"4-6 s random piano melodies (acoustic grand piano of the FluidR3 soundfont, rendered by fluidsynth), "
            f"notes of 0.15-0.8 s over MIDI {PIANO_LOW}..{PIANO_HIGH}, with occasional 2-note chords. Sample json is a "
            "list of note events {'start', 'end' (seconds, the exact MIDI times), 'note' (MIDI pitch)}; rendered onsets "
            "land within a few ms of the MIDI times."
        ),
        "labels": {
            "kind": "events",
            "field": "note",
            "onset_field": "start",
            "offset_field": "end",
            "num_classes": len(classes),
            "classes": classes,
        },
        "probe": {"epochs": 30, "learning_rate": 0.005, "batch_size": 8, "batch_size_encode": 8, "pos_weight": 3.0},
    }
    return TaskBuild(card=card, splits=splits, sources=[dict(s) for s in SOURCES])


__all__ = ["SOUNDFONT", "SOURCES", "build_instruments", "build_notes", "pitch_split", "render"]
