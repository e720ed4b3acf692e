"""Hypothesis strategies for hostile data: JSON-like values, hostile strings, and records of each format.

The property tests (``tests/test_fuzz.py``) draw from these; ``HYPOTHESIS_PROFILE=fuzz`` (conftest.py) runs
them with 30,000 examples per target (20,000, 7,500 and 12,000 for its three slow targets) instead of the
suite's small, derandomized count.
"""

from __future__ import annotations

from hypothesis import strategies as st

HOSTILE_STRINGS = [
    "http://[x/a.jpg",  # urlparse: Invalid IPv6 URL
    "https://[::1/a.png",
    "~nosuchuser/a.jpg",  # expanduser: RuntimeError
    "a" * 5000,  # a file name too long for the OS
    "x/" * 3000 + "a.png",
    "/9j/" + "A" * 120,  # base64 JPEG that starts like a path
    "data:image/png;base64,!!!!",
    "data:text/plain,hello",
    "file:///no/such/file.png",
    "file://",
    "http://",
    "a\x00b.png",  # NUL byte
    "\udce9.png",  # a lone surrogate (JSON "\udce9")
    "<image>",
    "<image>\n<image>",
    "None",
    "",
    " ",
    "video",
    "..",
    "/",
    "https://example.com/a.png",
    "C:\\images\\a.png",
    "%00%ff.png",
]
HUGE_NUMBERS = [10**400, -(10**400), 10**30, float("inf"), float("-inf"), float("nan"), 1e308, -1, 0, 2**63]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(HOSTILE_STRINGS)
    | st.sampled_from(HUGE_NUMBERS)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
texts = st.text(max_size=20) | st.sampled_from(HOSTILE_STRINGS)
roles = st.sampled_from(["user", "bot", "assistant", "human", "gpt", "system", "narrator", ""]) | json_values
types = st.sampled_from(["text", "image", "audio", "video", "TEXT", "smell"]) | json_values


def _maybe(**fields):
    """A record with each field present or absent, its value hostile or plausible."""
    return st.fixed_dictionaries({}, optional=fields)


s3_messages = st.lists(
    _maybe(role=roles, type=types, text=texts | json_values, content=texts | json_values), max_size=5
)
RECORDS = {
    "s3": _maybe(id=json_values, messages=s3_messages | json_values),
    "m3it": _maybe(
        id=json_values,
        instruction=texts | json_values,
        inputs=texts | json_values,
        outputs=texts | json_values,
        image_base64_str=st.lists(texts, max_size=3) | json_values,
        images=st.lists(texts, max_size=3) | json_values,
        meta=json_values | st.just('{"video": true}') | st.just("{"),
    ),
    "macaw": _maybe(
        id=json_values,
        instruction=texts | json_values,
        response=texts | json_values,
        image=texts | json_values,
        image_path=texts | json_values,
        video=texts | json_values,
        audio=texts | st.just("video") | json_values,
        audio_path=texts | json_values,
    ),
    "llava": _maybe(
        id=json_values,
        image=texts | st.lists(texts, max_size=3) | json_values,
        conversations=st.lists(_maybe(**{"from": roles, "value": texts | json_values}), max_size=4)
        | json_values,
    ),
    "shots": _maybe(
        id=json_values,
        video=texts | json_values,
        shots=st.lists(
            texts
            | st.lists(texts, max_size=3)
            | _maybe(start=json_values, end=json_values, video=texts, frames=json_values, asr=json_values)
            | json_values,
            max_size=3,
        )
        | json_values,
        asr=json_values,
        question=texts | json_values,
        answer=texts | json_values,
        caption=texts | json_values,
    ),
}
OPTIONS = {
    "s3": st.just({}),
    "m3it": _maybe(video=st.booleans()),
    "macaw": _maybe(
        media_from_id=st.fixed_dictionaries({"video": st.sampled_from(["v/{id}.mp4", "{id}"])}),
        audio_from_video=st.booleans(),
    ),
    "llava": st.just({}),
    "shots": _maybe(prompt=st.text(min_size=1, max_size=10)),
}
