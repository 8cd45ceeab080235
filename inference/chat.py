"""The chat template: OpenAI chat messages -> the prompt text our model is trained on.

The model knows one framing: a prompt, then <|answer|> (added by the tokenizer's encode_prompt), then the
answer. One user message is the prompt as it is, so `chat/completions` with one message answers exactly as
`completions` with that text. A system message and earlier turns come first, each as a `### Role` section;
the last message must be the user's.
"""

from __future__ import annotations

ROLES = ("system", "developer", "user", "assistant")


def message_text(message, index: int) -> str:
    if not isinstance(message, dict):
        raise ValueError(f"messages[{index}] must be an object")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ValueError(f"messages[{index}].role must be one of {', '.join(ROLES)}, not {role!r}")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ValueError(f"messages[{index}].content must be a string or a list of text parts")


def chat_prompt(messages) -> str:
    """The prompt text for `messages` (ValueError names the bad message)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    texts = [message_text(m, i) for i, m in enumerate(messages)]
    if messages[-1]["role"] != "user":
        raise ValueError(f"the last message must be the user's, not the {messages[-1]['role']}'s")
    earlier = [f"### {m['role'].capitalize()}\n{t}\n" for m, t in zip(messages[:-1], texts[:-1])]
    return "\n".join(earlier) + ("\n" if earlier else "") + texts[-1]
