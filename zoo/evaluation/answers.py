"""Short-answer normalisation (the VQA evaluation's) and option-letter parsing (MMMU's).

``normalize_vqa_answer`` follows the official VQA evaluation script (GT-Vision-Lab/VQA,
``vqaEval.py``: ``processPunctuation`` then ``processDigitArticle``): lower case, punctuation removed or
replaced by a space, number words to digits, articles dropped, apostrophes restored in common
contractions. ``vqa_accuracy`` is its answer score: ``min(1, #matching humans / 3)`` averaged over the
10 leave-one-out subsets of the human answers; with a single reference it is exact match.

``parse_option_letter`` follows MMMU's ``parse_multi_choice_response`` (MMMU-Benchmark/MMMU,
``eval/utils/eval_utils.py``): "(A)", then a bare " A ", then (for answers longer than five words) an
option's text; among several candidates the last one mentioned wins. MMMU draws a random letter when
nothing matches; here that draw is seeded by the sample id, so runs are reproducible, and it is reported.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock",
    "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've",
    "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've",
    "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've",
    "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
               ",", "?", "!")  # fmt: skip
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _process_punctuation(text: str) -> str:
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_STRIP, text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, re.UNICODE)


def _process_digit_article(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_vqa_answer(text: str) -> str:
    """An answer as the VQA evaluation compares it (``processPunctuation`` + ``processDigitArticle``)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(text))


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """VQA accuracy of one answer: ``min(1, matches / 3)`` averaged over leave-one-out reference subsets."""
    answer = normalize_vqa_answer(prediction)
    gold = [normalize_vqa_answer(r) for r in references]
    if len(gold) == 1:
        return float(answer == gold[0])
    scores = []
    for left_out in range(len(gold)):
        others = gold[:left_out] + gold[left_out + 1 :]
        scores.append(min(1.0, sum(g == answer for g in others) / 3))
    return sum(scores) / len(scores)


def option_letters(count: int) -> list[str]:
    """``["A", "B", ...]`` for ``count`` options (MMMU's ``get_multi_choice_info``)."""
    if not 1 <= count <= 26:
        raise ValueError(f"a question needs 1 to 26 options, got {count}")
    return list(string.ascii_uppercase[:count])


def parse_option_letter(response: str, options: Sequence[str], seed: str = "") -> tuple[str, bool]:
    """The option letter a generated answer names, MMMU's way; ``(letter, guessed)``.

    ``guessed`` is True when nothing in the answer named an option and the letter was drawn at random
    (seeded by ``seed``), as MMMU does.
    """
    letters = option_letters(len(options))
    for char in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(char)
    padded = f" {response} "
    candidates = [c for c in letters if f"({c})" in padded]
    pattern = "({})" if candidates else " {} "
    if not candidates:
        candidates = [c for c in letters if f" {c} " in padded]
    by_text = False
    if not candidates and len(padded.split()) > 5:
        candidates = [c for c, text in zip(letters, options, strict=True) if text.lower() in padded.lower()]
        by_text = True
    if not candidates:
        return random.Random(f"mmmu:{seed}").choice(letters), True
    if len(candidates) == 1:
        return candidates[0], False
    if by_text:
        text_of = dict(zip(letters, options, strict=True))
        return max(candidates, key=lambda c: padded.lower().rfind(text_of[c].lower())), False
    return max(candidates, key=lambda c: padded.rfind(pattern.format(c))), False


def answer_index(reference: str, options: Sequence[str]) -> int | None:
    """Which option a reference answer means: its letter ("B", "(B)", "B.") or its text; None if neither."""
    letters = option_letters(len(options))
    text = reference.strip()
    letter = text.strip("().: ").upper()
    if len(letter) == 1 and letter in letters:
        return letters.index(letter)
    wanted = normalize_vqa_answer(text)
    for index, option in enumerate(options):
        if normalize_vqa_answer(option) == wanted:
            return index
    return None
