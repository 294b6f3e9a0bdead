"""The GPU line-up switch to the method's own pre-labellers (issue 6): docker-compose.method.yml over the
stack's docker-compose.yml, and data/configs/gpu-method.toml for the engine.

Specifies that the override is a valid compose file, alone and merged over the stack (checked with the
compose specification's schema, as tests/test_compose.py checks the stack), that its two vLLM services
install this project's plugin before `vllm serve` and serve the converted directories with the flags the
models need, and that the engine's configuration asks those services for the names they serve.
No Docker engine or GPU runs here: the files are checked, not started.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from schemas.config import EngineConfig, MediaTransport
from tests.compose_spec import REQUIRED_ENV, command_argv, interpolate_tree, load_compose, schema_errors

ROOT = Path(__file__).resolve().parent.parent
ENV = {**REQUIRED_ENV, "MODELS_DIR": "/srv/models"}


def override() -> dict:
    return interpolate_tree(yaml.safe_load((ROOT / "docker-compose.method.yml").read_text()), ENV)


def merged() -> dict:
    """Compose's merge for these keys: mappings merge, `entrypoint`/`command` replace, volumes add up."""
    base, extra = load_compose(ENV), override()
    for name, service in extra["services"].items():
        target = base["services"][name]
        volumes = target.get("volumes", []) + service.get("volumes", [])
        target.update(service)
        target["volumes"] = volumes
    return base


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_override_is_valid_alone_and_over_the_stack():
    doc = {k: v for k, v in override().items() if not k.startswith("x-")}
    assert schema_errors(doc) == []
    assert schema_errors(merged()) == []


def test_both_services_install_the_plugin_then_serve_the_converted_directories():
    services = merged()["services"]
    for name, model, served in (
        ("vllm-audio", "/models/salmonn-13b", "salmonn"),
        ("vllm-video", "/models/chat-univi-7b", "chat-univi"),
    ):
        service = services[name]
        script = service["entrypoint"][2]
        assert "pip install -q --no-deps" in script and script.endswith(
            'exec vllm serve "$@"'
        )  # $$ is compose's escape for $
        assert "./:/plugin:ro" in service["volumes"] and "/srv/models:/models:ro" in service["volumes"]
        assert "media:/state/media:ro" in service["volumes"]  # the stack's media cache stays mounted
        argv = command_argv(service)
        assert argv[0] == model and flag(argv, "--served-model-name") == served
        assert flag(argv, "--chat-template-content-format") == "openai" and flag(argv, "--dtype") == (
            "float16" if served == "salmonn" else "bfloat16"
        )
        assert service["image"].startswith("vllm/vllm-openai") and "healthcheck" in service  # from the stack
    audio, video = (command_argv(services[n]) for n in ("vllm-audio", "vllm-video"))
    assert flag(audio, "--limit-mm-per-prompt") == '{"audio":1}' and flag(audio, "--max-model-len") == "2048"
    assert flag(video, "--limit-mm-per-prompt") == '{"video":1}'
    assert yaml.safe_load(flag(video, "--media-io-kwargs")) == {"video": {"fps": 1, "num_frames": 100}}
    assert shlex.split(override()["services"]["vllm-audio"]["command"])[0].startswith("/models/")


def test_engine_config_asks_the_served_names_with_the_media_they_take():
    config = EngineConfig.from_file(ROOT / "data" / "configs" / "gpu-method.toml")
    audio, visual = config.roles["audio_clue"], config.roles["visual_clue"]
    assert (audio.endpoints[0].base_url, audio.endpoints[0].model) == ("http://vllm-audio:8000/v1", "salmonn")
    assert (visual.endpoints[0].base_url, visual.endpoints[0].model) == ("http://vllm-video:8000/v1", "chat-univi")
    assert audio.media is MediaTransport.audio_url and visual.media is MediaTransport.video_url
    assert audio.media_root == visual.media_root == "/state/media" and config.media.max_frames == 100
