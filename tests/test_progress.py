"""The build's progress artifact as Prefect stores it for the UI: the run's Artifacts tab shows each
artifact's description (rendered as Markdown) on its card, the percentage only on the artifact's own page,
so the description must carry the numbers. Read back through Prefect's own client from the local server."""

from __future__ import annotations

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.progress import Progress, add_listener, progress_sentence, remove_listener


def _artifacts(run_id):
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )


@flow
def annotate_nine() -> list:
    """Nine clips in batches of 4, 4 and 1, as build_coarse advances its Progress; what the card said after each."""
    from prefect.runtime import flow_run

    progress = Progress(9, key="test-progress")
    seen = [(a.description, a.data) for a in _artifacts(flow_run.id) if a.key == "test-progress"]
    for batch in (4, 4, 1):
        progress.advance(batch)
        seen += [(a.description, a.data) for a in _artifacts(flow_run.id) if a.key == "test-progress"]
    return seen


def test_the_progress_card_says_how_many_clips_of_how_many_are_done():
    heard = []

    def listener(done: int, total: int) -> None:
        heard.append((done, total))

    add_listener(listener)
    try:
        state = annotate_nine(return_state=True)
    finally:
        remove_listener(listener)
    seen = state.result()
    assert seen == [
        ("0 of 9 clips annotated (0%)", 0.0),
        ("4 of 9 clips annotated (44%)", 100 * 4 / 9),
        ("8 of 9 clips annotated (88%)", 100 * 8 / 9),
        ("9 of 9 clips annotated (100%)", 100.0),
    ]
    [artifact] = [a for a in _artifacts(state.state_details.flow_run_id) if a.key == "test-progress"]
    assert artifact.type == "progress" and artifact.description == "9 of 9 clips annotated (100%)"
    assert heard == [(4, 9), (8, 9), (9, 9)]  # the CLI's bar hears the same steps


def test_an_empty_build_says_so():
    assert progress_sentence(0, 0) == "No clips to annotate"
