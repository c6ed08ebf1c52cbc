"""Input limits of the API, in one place (docs/API.md lists them)."""

# JSON nested deeper than this is refused (400) before any view sees it.
MAX_JSON_DEPTH = 32
# A text field without a limit of its own takes at most this many characters.
MAX_TEXT_LENGTH = 2_000
# Notification bodies are longer by nature.
MAX_BODY_LENGTH = 65_536
# A JSON object in a field (payload, params, filter_params, config), encoded as UTF-8.
MAX_JSON_FIELD_BYTES = 16_384
# A notification's payload, encoded.
MAX_PAYLOAD_BYTES = 65_536
