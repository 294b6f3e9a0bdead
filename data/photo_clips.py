"""Test clips made from real photographs that ship in packages, with a mouth that moves (or not) with speech.

The faces are real: scikit-image's `data.astronaut()` (Eileen Collins, smiling) and matplotlib's sample portrait of
Grace Hopper. The mouth is opened by warping the lower face (the jaw drops, the lower lip follows, a dark mouth
interior shows between the lips) in proportion to a mouth track: the speech's own loudness envelope ("synced"),
movement only where the voice is silent ("unsynced"), or none ("still"). The voice is espeak-ng's. Variants make
the face harder to find: darker (an underexposed, noisy shot), smaller (a distant face), turned (a perspective warp
that foreshortens one side, as a head turned away from the camera). Encoded as the real MER clips are (H.264 + AAC,
25 fps, 640x360), with data/synth_clips.py's encoder flags. Nothing is downloaded.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.synth_clips import H264_AAC, speech_wav

FPS = 25
SIZE = (640, 360)  # width, height
RATE = 22050  # espeak-ng's sample rate


@dataclass(frozen=True)
class Photo:
    """A portrait and where its mouth is, in the photo's pixels (located once by eye on the fixed photo)."""

    name: str
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1: the head and shoulders
    mouth: tuple[float, float]  # centre of the lips
    mouth_width: float  # corner to corner
    chin_y: float


PHOTOS = {
    "astronaut": Photo("astronaut", crop=(90, 10, 350, 270), mouth=(223.0, 145.0), mouth_width=45.0, chin_y=178.0),
    "grace_hopper": Photo(
        "grace_hopper", crop=(60, 40, 480, 460), mouth=(267.0, 280.0), mouth_width=67.0, chin_y=333.0
    ),
}


def photo(name: str) -> np.ndarray:
    """The photograph as BGR uint8."""
    import cv2

    if name == "astronaut":
        from skimage import data

        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    if name == "grace_hopper":
        from matplotlib import cbook

        return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    if name == "coffee":  # a real photograph with no face in it
        from skimage import data

        return cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    raise KeyError(name)


def open_mouth(image: np.ndarray, p: Photo, amount: float) -> np.ndarray:
    """The photo with its mouth opened by `amount` (0 = as photographed, 1 = wide open, a gap of ~0.35 mouth
    widths): the jaw below the lips is pulled down with a smooth fall-off, and the gap is darkened."""
    import cv2

    if amount <= 0.01:
        return image
    out = image.copy()
    cx, cy = p.mouth
    w = p.mouth_width
    drop = 0.35 * w * min(1.0, amount)
    x0, x1 = int(cx - 1.1 * w), int(cx + 1.1 * w) + 1
    y0, y1 = int(cy - 2), int(p.chin_y + 0.8 * w) + 1
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    across = np.clip(1 - ((xs - cx) / (1.1 * w)) ** 2, 0, 1) ** 1.5
    # Full drop from the lips down to the chin, then fading to nothing below it (the neck stays).
    below = np.clip((ys - cy) / 3.0, 0, 1) * np.clip(1 - (ys - p.chin_y) / (0.8 * w), 0, 1)
    shift = drop * across * below
    out[y0:y1, x0:x1] = cv2.remap(image, xs, ys - shift, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # The mouth's inside: a dark ellipse between the upper lip and the dropped lower lip, with soft edges.
    mask = np.zeros(image.shape[:2], np.float32)
    centre = (int(round(cx)), int(round(cy + drop * 0.5)))
    axes = (max(1, int(0.30 * w)), max(1, int(drop * 0.45)))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    mask = 0.9 * cv2.GaussianBlur(mask, (0, 0), max(0.6, w / 40))[..., None]
    inside = np.array([40, 35, 90], np.float32)  # BGR: a dark red mouth interior
    return (out * (1 - mask) + inside * mask).astype(np.uint8)


def _darker(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An underexposed shot: a fifth of the light, gamma-crushed shadows and sensor noise."""
    lin = (frame.astype(np.float32) / 255.0) ** 1.6 * 0.35
    noisy = lin * 255.0 + rng.normal(0, 2.0, frame.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _place(face: np.ndarray, variant: str, background: np.ndarray) -> np.ndarray:
    """The portrait in a 640x360 frame: filling its height, a third of it (small), or turned away."""
    import cv2

    width, height = SIZE
    frame = background.copy()
    if variant == "small":
        side = height // 3
        tile = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        x, y = width // 2 + 60, height // 2 - side // 2 - 30
        frame[y : y + side, x : x + side] = tile
        return frame
    tile = cv2.resize(face, (height, height), interpolation=cv2.INTER_AREA)
    if variant == "turned":
        # Foreshortened: the far side narrower and shorter, as a head turned ~40 degrees from the camera.
        s = float(height)
        src = np.float32([[0, 0], [s, 0], [s, s], [0, s]])
        dst = np.float32([[0.10 * s, 0.0], [0.72 * s, 0.18 * s], [0.72 * s, 0.82 * s], [0.10 * s, 1.0 * s]])
        warp = cv2.getPerspectiveTransform(src, dst)
        tile = cv2.warpPerspective(tile, warp, (height, height), borderMode=cv2.BORDER_REPLICATE)
    x = (width - height) // 2
    frame[:, x : x + height] = tile
    return frame


def _envelope(samples: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Loudness of the voice around each time (40 ms window), 0..1 against its own loud parts."""
    half = int(0.02 * RATE)
    centre = (times * RATE).astype(int)
    rms = np.array(
        [np.sqrt(np.mean(samples[max(0, c - half) : c + half] ** 2)) if c < len(samples) else 0.0 for c in centre]
    )
    loud = np.percentile(rms[rms > 0], 90) if np.any(rms > 0) else 1.0
    env = np.clip(rms / loud, 0, 1)
    return np.where(env < 0.08, 0.0, env)


def _speech_track(texts: list[str], voice: str, edge_s: float = 0.5, lead_s: float | None = None) -> np.ndarray:
    """The phrases spoken with `lead_s` (default `edge_s`) of silence before them, `edge_s` after them and 0.8 s
    between (float samples)."""
    gap = np.zeros(int(0.8 * RATE), np.float32)
    parts = [np.zeros(int((edge_s if lead_s is None else lead_s) * RATE), np.float32)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts):
            path = speech_wav(text, Path(tmp) / f"p{i}.wav", voice)
            with wave.open(str(path), "rb") as handle:
                pcm = np.frombuffer(handle.readframes(handle.getnframes()), np.int16).astype(np.float32) / 32768.0
            parts += [pcm, gap]
    parts[-1] = np.zeros(int(edge_s * RATE), np.float32)
    return np.concatenate(parts)


def photo_clip(
    path: Path,
    *,
    face: str | None = "astronaut",
    texts: list[str] | None = None,
    mouth: str = "synced",
    variant: str = "plain",
    voice: str = "en",
    seconds: float | None = None,
    gain_db: float = 0.0,
    edge_s: float = 0.5,
    lead_s: float | None = None,
) -> Path:
    """A clip of a photographed face whose mouth is `mouth` ("synced" with the voice, "unsynced": moving only while
    the voice is silent, "still") in `variant` ("plain", "dark", "small", "turned"). `face=None` shows a real photo
    with no face in it (coffee); `texts=None` is a silent clip of `seconds` (default 3). With speech, `seconds`
    pads or cuts the track to that length and `edge_s` is the silence around the speech (`lead_s` before it);
    `gain_db` below 0 makes the voice quiet (the mouth still follows it)."""
    import cv2

    rng = np.random.default_rng(7)
    if texts:
        audio = _speech_track(texts, voice, edge_s, lead_s)
        if seconds is not None:
            audio = np.pad(audio, (0, max(0, int(seconds * RATE) - len(audio))))[: int(seconds * RATE)]
    else:
        audio = np.zeros(int((seconds or 3.0) * RATE), np.float32)
    frames = int(len(audio) / RATE * FPS)
    times = (np.arange(frames) + 0.5) / FPS
    env = _envelope(audio, times)
    audio = audio * 10 ** (gain_db / 20)
    if mouth == "synced":
        track = env
    elif mouth == "unsynced":  # syllable-like opening at ~4 Hz wherever the voice is silent, closed while it speaks
        voiced = np.convolve(env > 0, np.ones(5) / 5, mode="same") > 0
        track = np.where(voiced, 0.0, 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * times) ** 2)
    elif mouth == "still":
        track = np.zeros(frames)
    else:
        raise ValueError(f"mouth must be synced, unsynced or still, not {mouth!r}")
    background = np.full((SIZE[1], SIZE[0], 3), (96, 104, 110), np.uint8)
    if face is None:
        base = cv2.resize(photo("coffee"), SIZE, interpolation=cv2.INTER_AREA)
    else:
        p = PHOTOS[face]
        source = photo(face)
        x0, y0, x1, y1 = p.crop
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio.wav"
        with wave.open(str(wav), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(RATE)
            handle.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
        cmd = ["ffmpeg", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{SIZE[0]}x{SIZE[1]}"]
        cmd += ["-r", str(FPS), "-i", "-", "-i", str(wav), *H264_AAC, "-shortest", str(path)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for i in range(frames):
                if face is None:
                    frame = base
                else:
                    opened = open_mouth(source, p, float(track[i]))
                    frame = _place(opened[y0:y1, x0:x1], variant, background)
                if variant == "dark":
                    frame = _darker(frame, rng)
                proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            proc.stdin.close()
        finally:
            err = proc.stderr.read().decode(errors="replace")
            if proc.wait() != 0:
                raise RuntimeError(f"ffmpeg failed: {err[-2000:]}")
    return path


SPEECH = ["I finally passed the exam.", "I cannot believe it, this is wonderful news."]

# The test set: name -> photo_clip arguments.
CLIP_SET: dict[str, dict] = {
    "talking": {"face": "astronaut", "texts": SPEECH},
    "talking_hopper": {"face": "grace_hopper", "texts": SPEECH},
    "dark": {"face": "astronaut", "texts": SPEECH, "variant": "dark"},
    "small": {"face": "grace_hopper", "texts": SPEECH, "variant": "small"},
    "turned": {"face": "grace_hopper", "texts": SPEECH, "variant": "turned"},
    "unsynced": {"face": "astronaut", "texts": SPEECH, "mouth": "unsynced"},
    "still": {"face": "astronaut", "texts": SPEECH, "mouth": "still"},
    "no_face": {"face": None, "texts": SPEECH, "mouth": "still"},
    "silent_face": {"face": "grace_hopper", "texts": None, "mouth": "still"},
}


def make_clip_set(folder: Path, names: list[str] | None = None) -> dict[str, Path]:
    """The clips of CLIP_SET (or the named ones) in `folder`; clips already there are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names or list(CLIP_SET):
        path = folder / f"{name}.mp4"
        if not path.is_file():
            partial = folder / f".{name}.part.mp4"
            photo_clip(partial, **CLIP_SET[name])
            partial.rename(path)
        out[name] = path
    return out


if __name__ == "__main__":
    import sys

    for name, clip in make_clip_set(Path(sys.argv[1] if len(sys.argv) > 1 else "photo_clips")).items():
        print(name, clip)
