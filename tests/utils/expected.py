"""Values the tests share: the contract's examples and expected results."""

from typing import Any

CONTRACT_PARAMETERS: dict[str, Any] = {  # the contract's round-trip example
    "s": "a,b=c #x: y",
    "n": 7,
    "f": 1.5,
    "b": True,
    "z": None,
    "lst": [1, "two"],
    "nested": {"b": {"c": "x"}},
    "tmpl": "${oc.env:HOME}",
    "u": "café ✓",
    "w": "yes",
    "o": "007",
}

THREE_OF_THREE = {  # the progress of a finished `arithmetic` run
    "completed_nodes": 3,
    "total_nodes": 3,
    "completed_node_names": ["add_five", "multiply_by_two", "subtract_ten"],
    "running_node_names": [],
}
