"""The labeling interface reviewers see: the clip with its audio, what the models said, why a gate
held the row back, and the three things a reviewer gives back (decision, corrected labels, note).

Task data fields (filled by `review.tasks`): video, audio, fps, name, sha256, gates, labels, subtitle,
audio_clues(_header), visual_clues(_header), description_en, description_zh. The controls' names are what
`review.decisions` reads back from the annotations.

The clip's name is a Text object (not only a Header): Label Studio's task list shows as columns the data
fields that object tags of the interface read, in the interface's order, so the name is its first column.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

DEFAULT_PROJECT = "EMER coarse review"  # the Label Studio project's title unless one is named

DECISION = "decision"  # Choices: ACCEPT or REJECT
ACCEPT = "accept"
REJECT = "reject"
LABELS = "labels"  # TextArea: corrected labels, comma-separated; empty keeps the model's
NOTE = "note"  # TextArea: free text

PROJECT_DESCRIPTION = (
    "Rows of the EMER coarse dataset that a quality gate held back. Watch and listen, read the clues, "
    "the description and the labels, then accept (the row joins the corpus on the next build) "
    "or reject it; correct the labels if they are wrong."
)

# Read-only text blocks, in the order a reviewer reads them: (task data field, header). A header starting
# with $ is a task data field: the clue headers say which asks the row has (review.tasks.clue_header).
SECTIONS = [
    ("subtitle", "Subtitle"),
    ("audio_clues", "$audio_clues_header"),
    ("visual_clues", "$visual_clues_header"),
    ("description_en", "Description (English)"),
    ("description_zh", "Description (Chinese)"),
]


def label_config() -> str:
    """Label Studio labeling-config XML for the review project."""
    sections = "\n".join(
        f'  <Header value={quoteattr(header)} size="5"/>\n  <Text name="{field}" value="${field}"/>'
        for field, header in SECTIONS
    )
    return f"""<View>
  <View style="font-size: 1.4em; font-weight: 600">
    <Text name="clip" value="$name"/>
  </View>
  <View style="display: flex; gap: 1.5em; flex-wrap: wrap">
    <View style="flex: 1 1 360px">
      <Video name="video" value="$video" frameRate="$fps" sync="audio" muted="true" height="360"/>
      <Audio name="audio" value="$audio" sync="video" height="64"/>
    </View>
    <View style="flex: 1 1 300px">
      <Header value="Held back by" size="5"/>
      <Text name="gates" value="$gates"/>
      <Header value="Model labels" size="5"/>
      <Text name="model_labels" value="$labels"/>
    </View>
  </View>
{sections}
  <Header value="Your decision"/>
  <Choices name="{DECISION}" toName="video" choice="single-radio" required="true" showInline="true">
    <Choice value="{ACCEPT}" hint="The row joins the corpus (with your labels, if you give any) on the next build"/>
    <Choice value="{REJECT}" hint="The row stays out of the corpus"/>
  </Choices>
  <Header value="Corrected labels (comma-separated; leave empty to keep the model labels)" size="6"/>
  <TextArea name="{LABELS}" toName="video" rows="1" maxSubmissions="1" editable="true" \
placeholder="e.g. happy, relieved"/>
  <Header value="Note" size="6"/>
  <TextArea name="{NOTE}" toName="video" rows="2" maxSubmissions="1" editable="true" \
placeholder="Why, if it helps the next reviewer"/>
</View>
"""
