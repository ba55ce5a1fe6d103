"""Strict JSON parsing for the tests of memsgd's JSON output (Infinity and NaN are not JSON)."""
import json


def strict_loads(text):
    """``json.loads`` that refuses the non-JSON constants Python's json writes for inf and nan."""
    def refuse(token):
        raise ValueError(f"non-JSON token {token}")
    return json.loads(text, parse_constant=refuse)
