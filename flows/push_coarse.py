"""The push-coarse flow: publish a build-coarse output's gated rows and card to the Hugging Face Hub.

Two tasks: `stage-push` puts exactly what will be uploaded into a folder (flows/publish.py says what
and why), `upload-push` creates the dataset repo (private by default) and uploads that folder. The
token is read from HF_TOKEN inside the upload task: it is no flow or task parameter, so Prefect never
records it, and the run's artifact lists only the repo, the commit and the files.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import publish


@task(name="stage-push", cache_policy=NO_CACHE)
def stage_push(
    out_dir: str, staging_dir: str | None, tiers: tuple[str, ...] = ("coarse",), repo_id: str = "ORG/NAME"
) -> publish.Staged:
    return publish.stage(Path(out_dir), Path(staging_dir) if staging_dir else None, tiers=tiers, repo_id=repo_id)


@task(name="upload-push", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def upload_push(staged: publish.Staged, repo_id: str, private: bool, endpoint: str | None) -> dict:
    return publish.upload(staged, repo_id, private=private, endpoint=endpoint)


@flow(name="push-coarse", persist_result=False)
def push_coarse(
    out_dir: str,
    repo_id: str,
    private: bool = True,
    endpoint: str | None = None,
    staging_dir: str | None = None,
    tiers: list[str] | None = None,
) -> dict:
    """Push the gated split (`train`) of each tier in `tiers` (default: coarse), as its own config, and the card
    of `out_dir` to the dataset repo `repo_id`; `failed` stays local."""
    logger = get_run_logger()
    publish.hub_token()  # no token: fail before staging
    staged = stage_push(out_dir, staging_dir, tuple(tiers or ("coarse",)), repo_id)
    logger.info(
        "staged %d gated rows (%d files); held back locally: %s", staged.rows, len(staged.files), staged.held_back
    )
    result = upload_push(staged, repo_id, private, endpoint)
    files = "\n".join(f"- `{name}`" for name in result["files"])
    create_markdown_artifact(
        key="push-coarse",
        description=f"Pushed {repo_id}",
        markdown=f"""# Pushed `{repo_id}` ({"private" if result["private"] else "public"})

{result["rows"]} gated rows; tiers (configs): {result.get("tiers")}; held back locally: {result["held_back"]}.
Commit [{result["commit"]}]({result["commit_url"]}).

{files}
""",
    )
    logger.info("pushed %s: commit %s", result["url"], result["commit"])
    return result
