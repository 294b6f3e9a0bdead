"""Descriptions written for these tests in the two styles the lexicon labeller reads, with the labels a reader
would give them, and two emotion wheels to score them on.

The texts are this project's own (no corpus or held-out description is copied): `HUMAN` follows the
EMER annotators' layout (what the video shows, what the audio sounds like, the subtitle quoted and
interpreted, then the conclusions, often spread over several sentences and not always last); `MLLM`
follows the way multimodal models describe a clip (an inference in nearly every sentence: "suggesting",
"indicating", "reflects"). The wheels are two well-known published shapes, written out here in the
authors' spreadsheet layout so the project's own wheel metric (metrics/wheel.py) scores on them: a
feelings wheel (happy, sad, angry, fearful, surprised, disgusted, bad) and Plutchik's eight primaries.
Words neither wheel holds ("serious", "neutral") drop out, as the real wheels drop what they lack.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tests.fixtures.metrics.emotion_wheel import _sheet

HUMAN: list[tuple[str, list[str]]] = [
    (
        "In the video, a young woman sits at a desk; at first she looks at the man opposite her with a slight "
        "smile, then her brows knit and the corners of her mouth turn down. In the audio, her voice rises and she "
        'speaks quickly. In the text, the subtitle says: "How many times do I have to tell you?" This sentence '
        "shows that she has explained the matter again and again and he still does not understand. Therefore, "
        "this sentence expresses her impatience and dissatisfaction with the man.",
        ["impatient", "dissatisfied"],
    ),
    (
        "In the video, the man lowers his head and looks down at the floor, his shoulders slumped, and he rubs "
        "his eyes with his hand. In the audio, his voice is low and hoarse, and he pauses for a long time "
        'between words. In the text, the subtitle says: "She is not coming back." Judging from his posture and '
        "his low voice, the man is grieving and feels hopeless; he is not angry with anyone, only sad about the "
        "loss.",
        ["grieving", "hopeless", "sad"],
    ),
    (
        "In the video, a girl opens a box and her eyes widen; she covers her mouth with both hands and then "
        'laughs. In the audio, she gasps and her pitch jumps up. In the text, the subtitle says: "You '
        'remembered my birthday!" Based on her expression and the sudden rise in her voice, she is surprised '
        "at first, and then delighted and grateful to the person who prepared the gift.",
        ["surprised", "delighted", "grateful"],
    ),
    (
        "In the video, the woman keeps glancing at the door and twisting her fingers. In the audio, her speech "
        "is fast and her voice trembles slightly. Combining her expression and voice, we can infer that she is "
        'nervous and worried about something. In the text, the subtitle says: "Has he called yet?" Therefore, '
        "this sentence may be a question to the other person about whether someone has been in touch.",
        ["nervous", "worried"],
    ),
    (
        "In the video, the man leans back in his chair, crosses his arms, and raises one corner of his mouth "
        "while looking at the other person. In the audio, he speaks slowly, stressing each word. In the text, "
        'the subtitle says: "Oh, so you are the expert now." This sentence is sarcastic; combined with his '
        "posture and tone, it shows his contempt and disdain for the other person's opinion.",
        ["sarcastic", "contemptuous", "disdainful"],
    ),
    (
        "In the video, an elderly woman sits on the sofa holding a photo, her eyes red and tears on her face. In "
        "the audio, she speaks softly and her voice breaks from time to time. In the text, the subtitle says: "
        '"He always sat right here." This sentence recalls someone who is no longer there. Therefore, the woman '
        "misses her late husband and is filled with sorrow and loneliness.",
        ["sorrowful", "lonely", "sad"],
    ),
    (
        "In the video, the man in a suit sits upright, looks straight at the camera and gestures with one hand "
        "while speaking. In the audio, his tone is steady, his volume moderate and his pace even. In the text, "
        'the subtitle says: "Our plan will be completed by the end of the year." Overall, the man is calm and '
        "confident, stating the plan in a serious manner without any sign of nervousness.",
        ["calm", "confident", "serious"],
    ),
    (
        "In the video, the woman points at the man, her eyes wide open and her face flushed. In the audio, she "
        'shouts and her pitch is high. In the text, the subtitle says: "Get out of my house!" The words and the '
        "shouting show that she is furious with the man and cannot calm down.",
        ["furious", "angry"],
    ),
    (
        "In the video, the boy tilts his head and frowns slightly while staring at the paper in his hand. In the "
        'audio, his intonation rises at the end of the sentence. In the text, the subtitle says: "Wait, why is '
        'the answer different?" From this, we can deduce that he is puzzled by the result and curious to find '
        "out what went wrong.",
        ["puzzled", "curious"],
    ),
    (
        "In the video, the woman sighs, spreads her hands and shakes her head. In the audio, her tone is flat. "
        'In the text, the subtitle says: "Fine, do whatever you want." This sentence sounds like agreement, but '
        "it actually reflects her helplessness and resignation; she is reluctant to argue any further.",
        ["helpless", "resigned", "reluctant"],
    ),
    (
        "In the video, the young man scratches the back of his head, avoids eye contact and smiles awkwardly. "
        'In the audio, he laughs briefly and his voice becomes quieter. In the text, the subtitle says: "I, '
        'uh, forgot to bring the tickets." Based on his behaviour and the content of the subtitle, the young '
        "man feels embarrassed and a little guilty about his mistake.",
        ["embarrassed", "guilty"],
    ),
    (
        "In the video, the two friends hug and jump up and down, both smiling broadly. In the audio, there is "
        'loud laughter and cheering. In the text, the subtitle says: "We got the offer!" Therefore, they are '
        "extremely excited and happy about the good news.",
        ["excited", "happy"],
    ),
    (
        "In the video, the girl pulls the blanket up to her chin and her eyes dart around the dark room. In the "
        'audio, her breathing is quick and she whispers. In the text, the subtitle says: "Did you hear that '
        'noise?" Therefore, this sentence is a question about a sound she has just heard. Taken together, she '
        "is frightened and tense, not curious.",
        ["frightened", "tense"],
    ),
]

MLLM: list[tuple[str, list[str]]] = [
    (
        "The video shows a middle-aged man sitting in an office. His brows are furrowed and his lips are pressed "
        "together, suggesting displeasure. He speaks in a low, firm voice, which conveys a sense of "
        'frustration. The subtitle "This is the third time this week" indicates that the problem keeps '
        "recurring. Overall, the man's emotional state can be described as frustrated and dissatisfied.",
        ["displeased", "frustrated", "dissatisfied"],
    ),
    (
        "In the video, a woman is smiling warmly while talking to a child. Her eyes are soft and her head is "
        "slightly tilted, displaying tenderness. Her tone is gentle and cheerful. Combined with the subtitle "
        '"You did a great job today," it can be inferred that she feels proud of the child and happy.',
        ["happy", "proud", "tender", "cheerful"],
    ),
    (
        "The man in the video appears anxious. He keeps rubbing his hands together and glancing at his watch, "
        "and his leg is shaking. His voice is hurried and slightly trembling, indicating nervousness. The "
        'subtitle "The results should be out any minute" suggests that he is waiting for important news. '
        "Therefore, he is likely feeling anxious and expectant.",
        ["anxious", "nervous", "expectant"],
    ),
    (
        "In the video, the young woman's eyes are red and she is wiping away tears. Her voice is choked and she "
        'speaks slowly, revealing deep sadness. The subtitle "I really tried my best" shows her disappointment '
        "in herself. In summary, she is sad, disappointed and somewhat aggrieved.",
        ["sad", "disappointed", "aggrieved"],
    ),
    (
        "The video shows a man laughing loudly with his head thrown back. His tone is lively. The subtitle "
        '"That was the funniest thing I\'ve ever seen" reflects his amusement. The man is clearly happy and '
        "amused.",
        ["happy", "amused"],
    ),
    (
        "In the video, the woman raises her eyebrows and her mouth falls open. She takes a step back. Her voice "
        'rises sharply in pitch. The subtitle "You\'re moving to Paris?" expresses her shock at the unexpected '
        "news. Her emotional state is one of surprise, with no sign of anger.",
        ["shocked", "surprised"],
    ),
    (
        "The man is standing with his arms crossed and looking away from the speaker. He rolls his eyes. His "
        'voice is flat and he replies with short answers. The subtitle "Whatever, it\'s not my problem" '
        "suggests indifference. Overall, he seems indifferent and slightly annoyed.",
        ["indifferent", "annoyed"],
    ),
    (
        "In the video, the elderly man is sitting alone on a bench in the park, looking at the pigeons. His "
        "expression is calm but his eyes seem a little sad. He speaks slowly and softly. Based on the subtitle "
        '"My children rarely visit these days," the man may be feeling lonely and a bit melancholy, although '
        "he remains calm.",
        ["lonely", "melancholy", "calm", "sad"],
    ),
]

# Chinese descriptions in the same two styles (the project's own, as above), with the English labels.
CHINESE: list[tuple[str, list[str]]] = [
    (
        "在视频中，一位年轻女子坐在桌前，起初面带微笑，随后眉头紧锁，嘴角下垂。在音频中，她的声音升高，语速加快。"
        "在文本中，字幕说：“我到底要跟你说多少遍？”因此，这句话表达了她对这个男人的不耐烦和不满。",
        ["impatient", "dissatisfied"],
    ),
    (
        "在视频中，女子不停地看向门口，手指绞在一起。在音频中，她语速很快，声音微微发抖。结合她的表情和声音，"
        "可以推断她感到紧张和担心。在文本中，字幕说：“他打电话来了吗？”因此，这句话可能是在询问对方是否有人联系过。",
        ["nervous", "worried"],
    ),
    (
        "视频中，女子扬起眉毛，张大了嘴，向后退了一步。她的语调突然升高。字幕“你要搬去巴黎？”表达了她听到意外消息时的震惊。"
        "她的情绪是惊讶，并没有生气。",
        ["shocked", "surprised"],
    ),
    (
        "视频中，男孩歪着头，盯着手里的试卷，微微皱眉。在音频中，他句末的语调上扬。字幕说：“等等，为什么答案不一样？”"
        "由此可见，他对结果感到疑惑，也很好奇到底哪里出了错。",
        ["puzzled", "curious"],
    ),
]

# level1 -> level2 -> [level3]
FEELINGS_WHEEL: dict[str, dict[str, list[str]]] = {
    "happy": {
        "joyful": ["delighted", "elated", "gleeful", "joy", "cheerful", "jovial", "merry", "jolly"],
        "content": ["contented", "satisfied", "pleased", "glad"],
        "playful": ["amused", "laughing", "smiling"],
        "interested": ["curious", "inquisitive", "intrigued", "questioning", "inquiring"],
        "proud": ["confident", "assured", "self-assured", "determined", "resolute", "firm", "assertive", "decisive"],
        "peaceful": ["calm", "relaxed", "serene", "tranquil", "composed", "relieved", "comfortable", "at ease"],
        "trusting": ["grateful", "thankful", "appreciative", "moved", "touched", "affectionate", "loving", "tender"],
        "optimistic": ["hopeful", "expectant", "anticipation", "eager", "enthusiastic", "excited", "thrilled"],
    },
    "sad": {
        "lonely": ["isolated", "abandoned", "rejected"],
        "despair": ["grief", "grieving", "heartbroken", "anguished", "sorrowful", "miserable", "hopeless"],
        "depressed": ["gloomy", "melancholy", "dejected", "downcast", "despondent", "unhappy", "upset", "tearful"],
        "hurt": ["aggrieved", "wronged", "disappointed", "disheartened", "discouraged", "dismayed"],
        "guilty": ["ashamed", "shame", "regretful", "apologetic", "embarrassed", "humiliated"],
        "powerless": ["helpless", "resigned", "reluctant", "defeated", "desperate"],
    },
    "angry": {
        "mad": ["furious", "enraged", "livid", "fuming", "rage", "irate", "outraged", "shouting"],
        "aggressive": ["hostile", "provoked"],
        "frustrated": ["annoyed", "irritated", "irritable", "exasperated", "impatient", "agitated", "grumpy"],
        "critical": ["dissatisfied", "displeased", "unsatisfied", "discontented", "indignant", "resentful"],
        "distant": ["dismissive", "indifferent", "detached", "apathetic", "nonchalant"],
        "jealous": ["envious"],
    },
    "disgusted": {
        "disapproving": ["contemptuous", "disdainful", "scornful", "sarcastic", "mocking", "arrogant", "cynical"],
        "repelled": ["repulsed", "revolted", "revulsion", "averse", "loathing"],
    },
    "fearful": {
        "scared": ["afraid", "frightened", "terrified", "panicked", "alarmed", "horrified", "petrified", "dread"],
        "anxious": ["worried", "nervous", "tense", "uneasy", "concerned", "apprehensive", "restless", "distressed"],
        "insecure": ["shy", "timid", "self-conscious", "bashful", "awkward", "sheepish", "flustered", "hesitant"],
    },
    "surprised": {
        "startled": ["shocked", "stunned", "taken aback", "astonished"],
        "confused": ["puzzled", "perplexed", "bewildered", "baffled", "doubtful", "unsure", "uncertain"],
        "amazed": ["speechless", "dumbfounded", "incredulous", "disbelieving"],
    },
    "bad": {
        "bored": ["tired", "weary", "exhausted", "fatigued", "listless", "lethargic", "sleepy", "drained"],
        "stressed": ["overwhelmed", "pressured"],
    },
}

PLUTCHIK_WHEEL: dict[str, dict[str, list[str]]] = {
    "joy": {
        "serenity": ["calm", "relaxed", "serene", "tranquil", "peaceful", "composed", "relieved", "contented"],
        "ecstasy": ["elated", "delighted", "exhilarated", "thrilled", "gleeful"],
        "happiness": ["happy", "joyful", "cheerful", "glad", "pleased", "jovial", "amused", "playful", "smiling"],
        "pride": ["proud", "confident", "assured", "self-assured", "assertive", "satisfied"],
    },
    "trust": {
        "acceptance": ["grateful", "thankful", "appreciative", "moved", "touched"],
        "admiration": ["admiring", "affectionate", "loving", "tender", "warm", "caring", "fond", "friendly"],
    },
    "fear": {
        "apprehension": ["worried", "anxious", "nervous", "tense", "uneasy", "concerned", "restless", "stressed"],
        "terror": ["afraid", "scared", "frightened", "terrified", "panicked", "alarmed", "horrified", "fearful"],
        "submission": ["shy", "timid", "embarrassed", "awkward", "ashamed", "guilty", "helpless", "resigned"],
    },
    "surprise": {
        "distraction": ["confused", "puzzled", "perplexed", "bewildered", "uncertain", "doubtful", "hesitant"],
        "amazement": ["amazed", "astonished", "shocked", "stunned", "startled", "surprised", "incredulous"],
    },
    "sadness": {
        "pensiveness": ["pensive", "thoughtful", "melancholy", "gloomy"],
        "grief": ["grieving", "heartbroken", "anguished", "sorrowful", "despair", "hopeless", "desperate"],
        "sorrow": ["sad", "unhappy", "upset", "dejected", "tearful", "aggrieved", "lonely", "reluctant", "hurt"],
        "disappointment": ["disappointed", "disheartened", "discouraged", "dismayed", "disillusioned"],
    },
    "disgust": {
        "boredom": ["bored", "tired", "weary", "exhausted", "indifferent", "apathetic", "detached", "nonchalant"],
        "loathing": ["disgusted", "repulsed", "revolted", "averse"],
        "contempt": ["contemptuous", "disdainful", "scornful", "sarcastic", "mocking", "dismissive", "arrogant"],
    },
    "anger": {
        "annoyance": ["annoyed", "irritated", "impatient", "frustrated", "dissatisfied", "displeased", "agitated"],
        "rage": ["angry", "furious", "enraged", "livid", "irate", "outraged", "shouting", "mad"],
        "aggressiveness": ["hostile", "aggressive", "resentful", "indignant", "jealous", "envious", "suspicious"],
    },
    "anticipation": {
        "interest": ["curious", "interested", "inquisitive", "intrigued", "questioning", "serious", "focused"],
        "optimism": ["hopeful", "optimistic", "expectant", "eager", "enthusiastic", "excited", "determined"],
    },
}


def write_reader_wheels(folder: Path) -> Path:
    """The two wheels as the authors ship theirs: wheelN.xlsx, synonym.xlsx (each wheel word its own
    synonym) and format.csv (each word its own base): labels here are base words already."""
    folder.mkdir(parents=True, exist_ok=True)
    words: list[str] = []
    for n, wheel in enumerate((FEELINGS_WHEEL, PLUTCHIK_WHEEL), start=1):
        rows = [(l1, l2, l3) for l1, branches in wheel.items() for l2, leaves in branches.items() for l3 in leaves]
        _sheet(folder / f"wheel{n}.xlsx", ["level1", "level2", "level3"], rows)
        words += [w for row in rows for w in row]
    words = sorted(set(words))
    _sheet(folder / "synonym.xlsx", ["word_run1", "synonym_run1"], [(w, "[]") for w in words])
    with open(folder / "format.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "format"])
        writer.writerows([w, ""] for w in words)
    return folder


# Written after the lexicon, in wording it was not built around ("irked", "on edge", "ecstatic"): it still
# misses some of these words, as it will miss words of real descriptions.
UNSEEN: list[tuple[str, list[str]]] = [
    (
        "In the video, the woman rolls her eyes and taps her foot while the man keeps talking. In the audio, "
        'she exhales loudly before answering. In the text, the subtitle says: "Are you done yet?" The question '
        "is not a real question; it signals that she is irked and fed up with the long explanation, and she "
        "wants the conversation to end.",
        ["annoyed", "impatient"],
    ),
    (
        "In the video, the boy stares at the ground, his lower lip trembling, and he does not look at his "
        "father. In the audio, his voice is very small. In the text, the subtitle says: \"I didn't mean to "
        'break it." He is afraid of being punished and is full of remorse, so the boy is scared and sorry.',
        ["scared", "regretful", "sad"],
    ),
    (
        "In the video, the bride looks at her father with glistening eyes and a trembling smile. In the audio, "
        'her voice catches as she speaks. In the text, the subtitle says: "Thank you for everything, Dad." '
        "This sentence expresses deep gratitude; the bride is moved and happy, with a touch of sadness at "
        "leaving home.",
        ["grateful", "moved", "happy", "sad"],
    ),
    (
        "In the video, the man jumps up from his seat, clenches his fists and raises them above his head. In "
        'the audio, he roars loudly. In the text, the subtitle says: "Yes! We did it!" Based on the action and '
        "the cheering, he is ecstatic and triumphant about the victory.",
        ["excited", "happy", "triumphant"],
    ),
    (
        "The woman in the video glances nervously over her shoulder and clutches her bag tightly, suggesting "
        'that she feels unsafe. Her voice is hushed and hurried. The subtitle "Is someone following me?" '
        "reveals her apprehension. Overall, she appears frightened and on edge.",
        ["nervous", "frightened", "apprehensive"],
    ),
    (
        "The man smiles slightly while listening, but his eyes show little interest. His tone is polite yet "
        'monotonous. The subtitle "That sounds great, really" may be insincere. Overall, he seems bored and '
        "somewhat skeptical rather than genuinely enthusiastic.",
        ["bored", "skeptical"],
    ),
    (
        "In the video, the teenager slams the door and throws her bag on the bed. Her face is flushed and her "
        'jaw is clenched, indicating she is livid. The subtitle "You never listen to me!" conveys her '
        "resentment towards her parents. Her emotional state is anger mixed with hurt.",
        ["angry", "resentful", "hurt"],
    ),
    (
        "The elderly woman gazes out of the window with a faint smile. Her voice is soft and slow, reflecting a "
        'wistful, nostalgic mood. The subtitle "We used to dance here every summer" shows that she is recalling '
        "happy memories. She is calm and content, with a hint of longing.",
        ["nostalgic", "calm", "content", "wistful"],
    ),
]
