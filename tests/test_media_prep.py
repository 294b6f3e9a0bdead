"""Media prep: uniform frames and 16 kHz mono audio, cached by content hash, decoding isolated."""

import asyncio
import os
import re
import wave

import pytest
from PIL import Image

from data import synth_clips as synth
from runtime.isolation import DecoderCrashed, IsolatedPool
from schemas.config import MediaConfig
from schemas.manifest import Subtitles
from stages.ingest import probe_clip
from stages.media_prep import MediaPrep, UndecodableMedia, frame_count, scaled_size


@pytest.fixture
def pool():
    p = IsolatedPool(2)
    yield p
    p.close()


def prepare(tmp_path, pool, clip, with_audio=True, **media):
    config = MediaConfig(**media)
    record = probe_clip(clip, Subtitles(), None, config.audio_max_seconds, config.silence_threshold_db)
    return asyncio.run(MediaPrep(tmp_path / "cache", config, pool).prepare(record, with_audio))


def test_frame_count_follows_the_method_one_per_second_at_most_a_cap():
    config = MediaConfig()
    assert frame_count(3.6, config) == 4
    assert frame_count(250.0, config) == 100
    assert frame_count(0.2, config) == 1
    assert frame_count(10.0, MediaConfig(frames_per_second=2, max_frames=8)) == 8


def test_scaled_size_keeps_aspect_and_even_sides():
    assert scaled_size(1920, 1080, 448) == (448, 252)
    assert scaled_size(672, 378, 448) == (448, 252)
    assert scaled_size(320, 180, 448) == (320, 180)


def test_frames_are_uniform_resized_jpegs(tmp_path, pool, good_clip):
    media = prepare(tmp_path, pool, good_clip, frames_per_second=2, frame_max_side=160)
    duration = probe_clip(good_clip, Subtitles(), None, 30, -60).duration
    assert len(media.frames) == frame_count(duration, MediaConfig(frames_per_second=2)) == int(duration * 2) + 1
    assert media.frame_times == sorted(media.frame_times) and media.frame_times[0] < 0.5
    with Image.open(media.frames[0]) as img:
        assert img.format == "JPEG" and img.size == (160, 90)


def test_audio_is_16k_mono_and_capped(tmp_path, pool):
    long_clip = synth.talking_clip(tmp_path / "long.mp4", "I am talking for a while.", seconds=4.0)
    media = prepare(tmp_path, pool, long_clip, audio_max_seconds=2.5)
    with wave.open(media.wav) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
        assert w.getnframes() / 16000 == pytest.approx(2.5, abs=0.05)


def test_cache_is_reused_by_content_hash(tmp_path, pool, good_clip):
    first = prepare(tmp_path, pool, good_clip)
    stamp = os.stat(first.frames[0]).st_mtime_ns
    copy = tmp_path / "same_content_other_name.mp4"
    copy.write_bytes(good_clip.read_bytes())
    second = prepare(tmp_path, pool, copy)
    assert second == first and os.stat(first.frames[0]).st_mtime_ns == stamp


def test_frame_and_audio_settings_are_cached_apart(tmp_path, pool, good_clip):
    a = prepare(tmp_path, pool, good_clip, max_frames=2)
    b = prepare(tmp_path, pool, good_clip, max_frames=3)
    assert len(a.frames) == 2 and len(b.frames) == 3 and a.frames[0] != b.frames[0]
    assert a.wav == b.wav  # the audio did not change with the frame settings
    c = prepare(tmp_path, pool, good_clip, max_frames=2, audio_max_seconds=1.0)
    assert c.frames == a.frames and c.wav != a.wav


def test_audio_is_only_extracted_when_asked_for(tmp_path, pool, good_clip):
    assert prepare(tmp_path, pool, good_clip, with_audio=False).wav is None


def test_corrupt_clip_is_undecodable_with_a_stable_reason(tmp_path, pool, good_clip):
    bad = synth.corrupted_copy(good_clip, tmp_path / "corrupt.mp4")
    with pytest.raises(UndecodableMedia, match=r"^cannot decode: DECORDError: ") as first:
        prepare(tmp_path, pool, bad, with_audio=False)
    assert not re.search(r"\[\d\d:\d\d:\d\d\]", str(first.value))  # no wall-clock stamps: re-runs word it the same


def crash_on(value: int) -> int:
    if value == 3:
        os.abort()  # what decord does on some corrupt files
    return value * 10


def test_a_decoder_that_aborts_costs_one_item_not_the_run(pool):
    async def run_all():
        return await asyncio.gather(*(pool.run(crash_on, v) for v in range(6)), return_exceptions=True)

    results = asyncio.run(run_all())
    assert isinstance(results[3], DecoderCrashed)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 10, 20, 40, 50]
    assert asyncio.run(pool.run(crash_on, 7)) == 70  # the pool is usable afterwards
