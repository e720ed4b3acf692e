"""`zoo chat`: a command that builds a model (torch is imported inside ``run_chat`` only)."""

from __future__ import annotations

import argparse


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        help="recipe name, recipe YAML, a folder written by save_pretrained, or a Hub repo id (org/name)",
    )
    parser.add_argument("--image", help="an image file to ask about")
    parser.add_argument("--audio", help="an audio file to ask about (resampled to 16 kHz)")
    parser.add_argument("--video", help="a video file (decoded with PyAV) or a folder of frame images")
    parser.add_argument(
        "--prompt", "-p", help="ask this once and exit (otherwise: one question per line on stdin)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)


def run_chat(args: argparse.Namespace) -> int:
    """Answer questions about the given media in the terminal."""
    from zoo.chat import chat_loop, load_model, media_messages
    from zoo.processor import ZooProcessor

    media = media_messages(image=args.image, audio=args.audio, video=args.video)
    model = load_model(args.target)
    processor = ZooProcessor.from_model(model)
    processor(media + [{"role": "user", "content": "check"}])  # decode the media before the first question
    chat_loop(model, processor, media, prompt=args.prompt, max_new_tokens=args.max_new_tokens)
    return 0
