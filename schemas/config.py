"""Engine configuration: the model line-up, media sampling and orchestration knobs.

A model is configuration, not code: every role names its endpoints, prompt and sampling here.
Values come from a TOML/YAML file (`--config`), then `EMER_*` environment variables
(nested with `__`, e.g. `EMER_BATCH_SIZE=32`), then these defaults.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
import types
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.errors import UserError


class ConfigError(UserError, ValueError):
    """The configuration cannot be used as written: one line per problem, each naming the file and the
    dotted key. A ValueError too, as pydantic's own validation errors are."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _is_number(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_number(arg) for arg in get_args(annotation))
    return annotation in (int, float)


def _refuse_booleans_for_numbers(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    # pydantic's lax mode reads `true` as 1; strict mode would also refuse the strings that
    # EMER_* variables always are, so only booleans are refused.
    field = model.model_fields.get(info.field_name or "")
    if isinstance(value, bool) and field is not None and _is_number(field.annotation):
        raise ValueError(f"a number is wanted, not {str(value).lower()}")
    return value


class StrictModel(BaseModel):
    """A configuration section: an unknown key is a typo to report, never a setting to ignore."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_booleans_for_numbers(cls, value, info)


class MediaTransport(StrEnum):
    """How a role's media reach the server, as OpenAI chat content parts."""

    none = "none"  # text only
    input_audio = "input_audio"  # base64 wav in an `input_audio` part
    audio_url = "audio_url"  # `audio_url` part; data: URL (or file:// with media_root)
    video_url = "video_url"  # `video_url` part; data: URL (or file:// with media_root)
    frames = "frames"  # sampled frames as `image_url` parts


class Endpoint(StrictModel):
    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="Model name as the server knows it (--served-model-name)")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key")
    max_in_flight: int = Field(32, ge=1, description="Concurrent requests this client sends to the endpoint")
    timeout_s: float = Field(300.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _an_http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http:// or https:// URL is wanted, e.g. http://127.0.0.1:8000/v1")
        return url  # unchanged: the configuration's hash (and so the checkpoint's keys) depends on it


class Sampling(StrictModel):
    # Greedy with a fixed seed so labels are reproducible across re-runs.
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)
    seed: int | None = 0
    # The method decodes SALMONN with 4-beam search. vLLM's OpenAI server beam-searches on request
    # (use_beam_search, n) and then applies no JSON schema: a beam-searched role answers in prose.
    beam_width: int | None = Field(None, ge=2, description="Beam search with this many beams (reply_format = prose)")
    length_penalty: float | None = Field(None, description="Beam search only: the exponent of the length norm")
    stop: list[str] | None = Field(None, description="Strings that end the reply (Chat-UniVi's turns end at '###')")


IMPORT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npz": "npz"}  # RoleConfig.format


class RoleConfig(StrictModel):
    backend: Literal["openai", "signals", "import"] = Field(
        "openai",
        description=(
            "openai: a model behind an OpenAI-compatible server; "
            "signals: the built-in annotators that measure the clip (no weights); "
            "import: answers read from a file of existing outputs keyed by clip name (`file`)"
        ),
    )
    endpoints: list[Endpoint] = Field(default_factory=list)
    prompt: str | None = Field(
        None,
        description="Prompt id: annotators/prompts/<id>.toml (openai backend); default: the one its stages declare",
    )
    sampling: Sampling = Field(default_factory=Sampling)
    media: MediaTransport = MediaTransport.none
    media_root: str | None = Field(
        None,
        description=(
            "Send media as file:// URLs under this path (the server's --allowed-local-media-path) "
            "instead of inline data"
        ),
    )
    max_retries: int = Field(
        4, ge=0, description="Transport retries with backoff on 5xx, timeouts and connection errors"
    )
    max_reasks: int = Field(2, ge=0, description="Re-asks when a reply is cut off or does not validate")
    reply_format: Literal["json", "prose"] = Field(
        "json",
        description=(
            "json: the reply is constrained to the stage's JSON schema; prose: the model answers in its own words "
            "(the method's SALMONN and Chat-UniVi were not trained to write JSON), read by the reply's from_prose"
        ),
    )
    # The import backend (backends/imported.py); `file` is declared before `format`, whose default is read from it.
    file: str | None = Field(
        None,
        description=(
            "import backend: the file of outputs keyed by clip name: a CSV (`name` + `column`), a JSONL, or the "
            "authors' npz (output-reason-*-eng.npz: name2reason; *-openset.npz: filenames + fileitems)"
        ),
    )
    format: Literal["csv", "jsonl", "npz"] | None = Field(
        None, validate_default=True, description="import backend: the file's format; default: from its suffix"
    )
    column: str | None = Field(
        None,
        description=(
            "import backend, CSV/JSONL: the column (field) holding the text (default `description`) "
            "or the label list (default `openset`)"
        ),
    )
    states_file: str | None = Field(
        None,
        description=(
            "import backend, clue roles: an openset file (the authors' *-openset.npz, or a `name, openset` CSV) "
            "whose label lists become the clue's emotional_states; none: the description carries the states"
        ),
    )

    @field_validator("file", "states_file")
    @classmethod
    def _a_readable_file(cls, value: str | None) -> str | None:
        if value is not None:
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"no such file {value}" if not path.exists() else f"{value} is not a file")
            try:
                with path.open("rb") as f:
                    f.read(1)
            except OSError as exc:
                raise ValueError(f"{value} cannot be read ({exc.strerror or exc})") from None
        return value

    @field_validator("states_file")
    @classmethod
    def _an_openset_file(cls, value: str | None) -> str | None:
        if value is not None and Path(value).suffix.lower() not in (".npz", ".csv"):
            raise ValueError(f"{value}: an openset file is the authors' *-openset.npz or a `name, openset` .csv")
        return value

    @field_validator("format")
    @classmethod
    def _format_from_suffix(cls, value: str | None, info: ValidationInfo) -> str | None:
        file = info.data.get("file")
        if value is None and file:
            value = IMPORT_SUFFIXES.get(Path(file).suffix.lower())
            if value is None:
                raise ValueError(f"cannot tell the format of {file} from its name: set format to csv, jsonl or npz")
        return value

    @model_validator(mode="after")
    def _imports_name_a_file(self) -> RoleConfig:
        given = [key for key in ("file", "column", "states_file") if getattr(self, key) is not None]
        if self.backend == "import" and self.file is None:
            raise ValueError('the import backend reads its answers from a file: set file = "PATH"')
        if self.backend != "import" and given:
            raise ValueError(f'{", ".join(given)}: read by the import backend only; set backend = "import" or drop it')
        return self

    @model_validator(mode="after")
    def _served_roles_name_a_server(self) -> RoleConfig:
        if self.backend == "openai" and not self.endpoints:
            raise ValueError("a role on the openai backend names its endpoints")
        if self.sampling.beam_width and self.reply_format == "json":
            raise ValueError('beam search applies no JSON schema: a beam-searched role sets reply_format = "prose"')
        return self


class MediaConfig(StrictModel):
    # The method's video model read 1 frame/s, at most 100 frames; its audio model at most 30 s.
    frames_per_second: float = Field(1.0, gt=0)
    max_frames: int = Field(100, ge=1)
    frame_max_side: int = Field(448, ge=16, description="Frames are scaled so the longer side is at most this")
    jpeg_quality: int = Field(90, ge=1, le=100)
    audio_sample_rate: int = Field(16000, ge=8000, le=48000, description="Hz; the method's audio model reads 16 kHz")
    audio_max_seconds: float = Field(30.0, gt=0)
    silence_threshold_db: float = Field(
        -60.0, le=0, description="dBFS; audio whose peak is below this is treated as silent"
    )


class ValidityGate(StrictModel):
    enabled: bool = True
    min_cjk_share_zh: float = Field(
        0.5, ge=0, le=1, description="Share of CJK among the letters of the Chinese text (quotes aside)"
    )
    max_label_words: int = Field(4, ge=1, description="A label longer than this is a sentence, not a label")


class LengthGate(StrictModel):
    """MER-Caption+ cut both tails of its description-length histogram; so do we, with fixed outer bounds
    and, once the corpus is large enough to have a histogram, its own quantiles."""

    enabled: bool = True
    min_words: int = Field(15, ge=0, description="Shorter English descriptions are cut off or empty of reasoning")
    max_words: int = Field(450, ge=1, description="EMER-Fine English descriptions average ~220 words")
    lower_quantile: float = Field(0.01, ge=0, lt=0.5)
    upper_quantile: float = Field(0.99, gt=0.5, le=1)
    min_rows_for_quantiles: int = Field(
        200, ge=1, description="Below this many descriptions, only the fixed bounds apply"
    )

    @model_validator(mode="after")
    def _bounds_in_order(self) -> LengthGate:
        # The quantiles' own bounds (below and above 0.5) already keep them in order.
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is above max_words ({self.max_words})")
        return self


class AVMatchGate(StrictModel):
    enabled: bool = True
    min_speech_ratio: float = Field(
        0.15, ge=0, le=1, description="Share of the track with voice activity that counts as speech"
    )
    min_face_ratio: float = Field(
        0.3, ge=0, le=1, description="Share of analysed frames with a face found that counts as a visible face"
    )
    min_speaker_score: float = Field(
        0.2,
        ge=-1,
        le=1,
        description="Active-speaker score (mouth opening correlated with the voice) from which the visible face is "
        "the one speaking",
    )


class CrossValidationGate(StrictModel):
    enabled: bool = True
    min_agreement: float = Field(
        0.2, ge=0, le=1, description="EMER Avg the description's labels must reach against the best-agreeing clue"
    )
    reject_valence_conflict: bool = Field(
        True, description="Reject clips whose audio and visual clues point to opposite sentiments"
    )


class GroundingGate(StrictModel):
    enabled: bool = True
    rules: Path | None = Field(None, description="Rules file; default gates/grounding_rules.toml")


class HighLevelGate(StrictModel):
    """MER-Caption+'s high-level filter (gates/high_level.py): classifier views of the clip itself vote (the
    facial-expression classifier, the voice's arousal against the corpus, the subtitle's sentiment), and a
    row whose labels disagree with the vote on the level-1 emotion group, the valence or the arousal is held
    back. A view below its threshold abstains; a row with no voting view passes."""

    enabled: bool = True
    min_face_ratio: float = Field(
        0.3, ge=0, le=1, description="Share of analysed frames with a face below which the face view abstains"
    )
    min_expression_probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Mean probability the strongest non-neutral expression class (FER2013) must reach for the face "
        "to vote; a neutral face does not vote",
    )
    min_smile_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of face frames smiling (AU12) from which the face votes happy, where no expression "
        "classifier ran",
    )
    min_subtitle_sentiment: float = Field(
        0.5,
        ge=0,
        le=1,
        description="|VADER compound| from which the subtitle votes a valence (VADER's own cut for 'positive' is "
        "0.05; 0.5 keeps only clearly worded subtitles)",
    )
    min_arousal: float = Field(
        0.35,
        ge=0,
        le=1,
        description="|arousal| (-1..1, relative to the corpus) from which the voice votes high or low; the "
        "acoustic reading's own 'high' starts near 0.38",
    )
    compare_groups: bool = Field(True, description="Hold back labels outside the level-1 group the views vote")
    compare_valence: bool = Field(True, description="Hold back labels of the opposite valence to the vote")
    compare_arousal: bool = Field(
        True, description="Hold back calm/tired labels on a high-arousal voice and excited/angry ones on a low one"
    )


class GatesConfig(StrictModel):
    validity: ValidityGate = Field(default_factory=ValidityGate)
    length: LengthGate = Field(default_factory=LengthGate)
    av_match: AVMatchGate = Field(default_factory=AVMatchGate)
    cross_validation: CrossValidationGate = Field(default_factory=CrossValidationGate)
    grounding: GroundingGate = Field(default_factory=GroundingGate)
    high_level: HighLevelGate = Field(default_factory=HighLevelGate)


class PlusTier(StrictModel):
    """The `plus` tier, as MER-Caption+ is to MER-Caption: the rows of the corpus (`train`) whose gate scores
    clear stricter thresholds. Every row carries each gate's score (`gates[].score`), so the tier is chosen
    at export from what is stored: a changed threshold costs no model call. A threshold is in the units of
    the score its gate stores (gates/*.py; `gates[].threshold` is the gate's own cut): validity = the Chinese
    text's CJK share, length = English words, av_match = the active-speaker correlation of mouth and voice
    (gate cut 0.2; where it could not be measured, the weaker of speech and face share over its threshold,
    1 = just passing, so 0.5 is no stricter there), cross_validation = EMER Avg of the labels against the
    best clue, grounding = claims the measurements contradict."""

    min_score: dict[str, float] = Field(
        default_factory=lambda: {"validity": 0.8, "length": 30, "av_match": 0.5, "cross_validation": 0.5},
        description="Gate -> the lowest score a plus row may have",
    )
    max_score: dict[str, float] = Field(
        default_factory=lambda: {"length": 300, "grounding": 0},
        description="Gate -> the highest score a plus row may have",
    )
    unscored: Literal["out", "in"] = Field(
        "out",
        description=(
            "A row whose verdict for a gate named here has no score (the gate had nothing to measure, e.g. "
            "cross_validation with no clue states): out of plus, or in. A gate the build did not run (disabled) "
            "has no verdict: its thresholds do not apply"
        ),
    )

    @field_validator("min_score", "max_score")
    @classmethod
    def _known_gates(cls, scores: dict[str, float]) -> dict[str, float]:
        gates = list(GatesConfig.model_fields)
        unknown = [g for g in scores if g not in gates]
        if unknown:
            raise ValueError(f"no gate named {', '.join(unknown)}; the gates are {', '.join(gates)}")
        return scores


class TiersConfig(StrictModel):
    """Quality tiers of the published rows: `coarse` is the corpus (`train`), `plus` a stricter subset."""

    plus: PlusTier = Field(default_factory=PlusTier)


TIERS: tuple[str, ...] = ("coarse", "plus")


class CanariesConfig(StrictModel):
    """Modality canaries (engine/canaries.py): before the corpus run, a few generated clips check that each role
    really uses its media (the audio role says the words of a spoken sentence; a visual role sent a clip with no
    face describes none, and sees the face in a clip with one)."""

    enabled: bool = Field(False, description="Ask the canaries before the corpus run; results in build.json")
    stop_on_failure: bool = Field(False, description="A failed canary stops the run (else it warns)")
    min_word_overlap: float = Field(
        0.5, gt=0, le=1, description="Share of the spoken sentence's words the audio role's answer must contain"
    )


class LocalServer(StrictModel):
    """A vLLM OpenAI server the engine starts itself (the embedded default, and tests)."""

    name: str
    model: str = Field(
        description=(
            "Model directory, or `tiny:text` / `tiny:audio` / `tiny:salmonn` / `tiny:chat_univi` "
            "for locally built random models"
        )
    )
    port: int = Field(ge=1, le=65535)
    served_model_name: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    startup_timeout_s: float = Field(600.0, gt=0)


# The method's roles; which stages each answers is declared by the stages (stages/registry.py).
ROLES: tuple[str, ...] = ("audio_clue", "visual_clue", "disambiguation", "translation", "labels")


def _local(port: int, model: str, prompt: str, media: MediaTransport = MediaTransport.none, **kw: Any) -> RoleConfig:
    return RoleConfig(
        endpoints=[Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model=model)], prompt=prompt, media=media, **kw
    )


def default_roles() -> dict[str, RoleConfig]:
    """The GPU line-up: vLLM-native models, one server per modality (see docker-compose.yml)."""
    text = "Qwen/Qwen2.5-7B-Instruct"
    return {
        "audio_clue": _local(8001, "Qwen/Qwen2-Audio-7B-Instruct", "audio_clue", MediaTransport.input_audio),
        "visual_clue": _local(8002, "Qwen/Qwen2.5-VL-7B-Instruct", "visual_clue", MediaTransport.frames),
        "disambiguation": _local(8003, text, "disambiguation"),
        "translation": _local(8003, text, "translation"),
        "labels": _local(8003, text, "labels"),
    }


class EngineConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMER_", env_nested_delimiter="__", extra="forbid")

    roles: dict[str, RoleConfig] = Field(default_factory=default_roles)
    extra_stages: list[str] = Field(
        default_factory=list,
        description=(
            "Stages beyond the method's, run after the description: 'package.module:Class' (README: Adding a stage)"
        ),
    )
    media: MediaConfig = Field(default_factory=MediaConfig)
    batch_size: int = Field(64, ge=1, description="Clips per Prefect task run")
    task_workers: int = Field(
        4,
        ge=1,
        description="Batches in flight at once per process (ThreadPoolTaskRunner size; threads per Dask worker)",
    )
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where batch tasks run: threads here, or a Dask cluster"
    )
    dask_address: str | None = Field(None, description="Scheduler of an existing Dask cluster; none: a local cluster")
    dask_workers: int = Field(2, ge=1, description="Processes of the local Dask cluster")
    decode_workers: int = Field(2, ge=1, description="Processes decoding media in isolation")
    max_clips_in_flight: int = Field(
        256, ge=1, description="Clips being annotated at once, across batches (bounds media in memory)"
    )
    shard_rows: int = Field(10_000, ge=1, description="Rows per Parquet shard")
    state_dir: Path | None = Field(None, description="Media cache and stage results; default: <out>/.state")
    servers: list[LocalServer] = Field(default_factory=list, description="vLLM servers to start for the run")
    gates: GatesConfig = Field(default_factory=GatesConfig)
    tiers: TiersConfig = Field(
        default_factory=TiersConfig, description="Quality tiers of the corpus (stages/tiers.py)"
    )
    canaries: CanariesConfig = Field(
        default_factory=CanariesConfig, description="Modality canaries asked before the run (engine/canaries.py)"
    )
    second_lineup: str | None = Field(
        None,
        description=(
            "A second line-up's configuration file: its stages run beside this one's (shared stages asked once) and "
            "its labels are one more view for the cross-validation gate; only its roles and extra_stages are read"
        ),
    )

    @field_validator("roles")
    @classmethod
    def _every_role(cls, roles: dict[str, RoleConfig]) -> dict[str, RoleConfig]:
        missing = [r for r in ROLES if r not in roles]
        if missing:
            raise ValueError(f"roles {missing} are not configured: a line-up names all of {list(ROLES)}")
        return roles

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_booleans_for_numbers(cls, value, info)

    @model_validator(mode="after")
    def _consistent(self) -> EngineConfig:
        names = [s.name for s in self.servers]
        ports = [s.port for s in self.servers]
        if len(set(names)) < len(names) or len(set(ports)) < len(ports):
            raise ValueError(f"servers: each needs a name and a port of its own, got names {names}, ports {ports}")
        if self.dask_address and self.task_runner != "dask":
            raise ValueError('dask_address is set but task_runner is "threads": set task_runner = "dask" or drop it')
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        # Environment over file over defaults: an operator can override one knob of a shared file.
        return (init_settings, env_settings, _FileSource(settings_cls, _config_file.get()))

    @classmethod
    def from_file(cls, path: Path | None) -> EngineConfig:
        """The configuration in `path` (none: the defaults), under the environment's EMER_* overrides.
        Raises ConfigError naming every problem (file, dotted key, what to do)."""
        token = _config_file.set(Path(path) if path else None)
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(config_problems(exc, cls, path)) from None
        finally:
            _config_file.reset(token)


_config_file: ContextVar[Path | None] = ContextVar("emer_config_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """A TOML or YAML config file, as a settings source ranked below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.data: dict[str, Any] = {}
        if path is not None:
            self.data = read_config_file(path)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML (`.toml`) or YAML file's table; a file that cannot be read or parsed is one ConfigError line."""
    kind = "TOML" if path.suffix == ".toml" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
        data = (tomllib.loads(text) if kind == "TOML" else yaml.safe_load(text)) or {}
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such configuration file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start}); save the configuration as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror or exc})"]) from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: not valid {kind}: {' '.join(str(exc).split())}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: a configuration is a table of keys, got a {type(data).__name__}"])
    return data


def config_problems(exc: ValidationError, root: type[BaseModel], path: Path | None) -> list[str]:
    """pydantic's errors as `FILE: dotted.key: what is wrong` lines, an unknown key with the nearest valid one."""
    source = f"{path}: " if path else ""
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        if error["type"] == "extra_forbidden":
            section = _model_at(root, loc[:-1])
            valid = list(section.model_fields) if section else []
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"valid keys here: {', '.join(valid)}"
            problems.append(f"{source}{key}: unknown key; {hint}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        if isinstance(given, (bool, int, float, str)) and error["type"] != "value_error":
            message += f" (got {json.dumps(given, ensure_ascii=False)})"
        problems.append(f"{source}{key or 'configuration'}: {message}")
    return problems


def _model_at(model: Any, loc: tuple) -> type[BaseModel] | None:
    """The config section that `loc` (a pydantic error location) points into, if it is a model."""
    current = model
    for part in loc:
        current = _without_none(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]  # an item (list index, dict key) of the container
        else:
            return None
    current = _without_none(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def stable_hash(obj: Any) -> str:
    """Short content hash of a JSON-able object, stable across runs and machines."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
