"""MIDI in and out for piano rolls, with `mido` (pure Python, so usable on a device).

Reading quantizes in beats, not seconds: a step of 1.0 is a quarter note
whatever the tempo, which is the grid of the JSB Chorales benchmark. A key is
on at step `t` when a note of that pitch sounds at the time `t * step` beats
(the onset of the step), the same rule used to build the benchmark rolls.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnnkit.edge import music as edge_music
from rnnkit.errors import UsageError

DEFAULT_TICKS_PER_BEAT = 480
DEFAULT_TEMPO_BPM = 100.0


def read_midi_notes(path: str | os.PathLike) -> list[tuple[int, float, float]]:
    """Reads every note of a MIDI file as (pitch, start_beat, end_beat).

    Drum channel (10) notes are skipped: they are not pitches.

    Raises:
        UsageError: the file is missing, not a MIDI file, or corrupt.
    """
    import mido

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"MIDI file not found. Expected a .mid file. Received: {path}")
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        raise UsageError(
            f"Could not read {path} as a MIDI file ({type(error).__name__}: {error}). "
            "Expected a standard MIDI file (.mid, type 0 or 1)."
        ) from None
    ticks_per_beat = midi.ticks_per_beat or DEFAULT_TICKS_PER_BEAT
    notes = []
    for track in midi.tracks:
        tick = 0
        sounding: dict[tuple[int, int], list[int]] = {}
        for message in track:
            tick += message.time
            if message.type not in ("note_on", "note_off"):
                continue
            if message.channel == 9:
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault(key, []).append(tick)
            elif sounding.get(key):
                start = sounding[key].pop(0)
                if tick > start:
                    notes.append(
                        (message.note, start / ticks_per_beat, tick / ticks_per_beat)
                    )
    return sorted(notes, key=lambda n: (n[1], n[0]))


def notes_to_roll(
    notes: list[tuple[int, float, float]], step: float = 1.0, source: str = "notes"
) -> np.ndarray:
    """Quantizes (pitch, start_beat, end_beat) notes to a (time, 88) piano roll.

    Raises:
        UsageError: no notes, or a pitch outside the 88 piano keys.
    """
    if step <= 0:
        raise UsageError(f"`step` must be positive (in beats). Received: step={step}")
    if not notes:
        raise UsageError(
            f"{source} holds no notes. Expected a MIDI file with at least one note."
        )
    outside = sorted(
        {
            p
            for p, _, _ in notes
            if not edge_music.LOWEST_PITCH <= p <= edge_music.HIGHEST_PITCH
        }
    )
    if outside:
        raise UsageError(
            f"{source} has pitches outside the 88-key range. Expected MIDI pitches "
            f"{edge_music.LOWEST_PITCH}..{edge_music.HIGHEST_PITCH}. "
            f"Received: pitches={outside}"
        )
    end = max(e for _, _, e in notes)
    length = max(1, int(np.ceil(end / step - 1e-9)))
    roll = np.zeros((length, edge_music.NUM_KEYS), dtype=np.uint8)
    times = np.arange(length) * step
    for pitch, start, stop in notes:
        # The benchmark's rule: a key is on at sample time t when start <= t < stop.
        # Limitation: a note shorter than the step that falls between two sample
        # times is dropped (choose a finer step for fast music).
        on = (times >= start - 1e-9) & (times < stop - 1e-9)
        roll[on, pitch - edge_music.LOWEST_PITCH] = 1
    return roll


def read_midi(path: str | os.PathLike, step: float = 1.0) -> np.ndarray:
    """Reads a MIDI file as a (time, 88) uint8 piano roll quantized to `step` beats."""
    return notes_to_roll(read_midi_notes(path), step=step, source=str(path))


def write_midi(
    roll: np.ndarray,
    path: str | os.PathLike,
    step: float = 1.0,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    velocity: int = 80,
    program: int = 19,
) -> Path:
    """Writes a piano roll as a type-0 MIDI file, atomically.

    Consecutive on-steps of a key become one held note.

    Args:
        roll: (time, 88) piano roll.
        path: output .mid path.
        step: length of one roll step in beats (quarter notes).
        tempo_bpm: tempo written into the file.
        velocity: note-on velocity.
        program: General MIDI program (19 = church organ, fitting for chorales).

    Returns:
        The path written.
    """
    import mido

    roll = edge_music.check_roll(roll)
    ticks_per_step = round(step * DEFAULT_TICKS_PER_BEAT)
    events = []
    for pitch, start, end in edge_music.roll_to_notes(roll):
        events.append((start * ticks_per_step, 1, pitch))
        events.append((end * ticks_per_step, 0, pitch))
    # Note-offs before note-ons at the same tick, so a re-struck key is heard.
    events.sort(key=lambda e: (e[0], e[1], e[2]))

    midi = mido.MidiFile(type=0, ticks_per_beat=DEFAULT_TICKS_PER_BEAT)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
    track.append(mido.Message("program_change", program=program, time=0))
    last = 0
    for tick, is_on, pitch in events:
        kind = "note_on" if is_on else "note_off"
        track.append(
            mido.Message(
                kind, note=pitch, velocity=velocity if is_on else 0, time=tick - last
            )
        )
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    midi.save(str(temporary))
    os.replace(temporary, path)
    return path
