"""Expected values shared by the end-to-end tests."""

THREE_OF_THREE = {  # the progress of a finished `arithmetic` run
    "completed_nodes": 3,
    "total_nodes": 3,
    "completed_node_names": ["add_five", "multiply_by_two", "subtract_ten"],
    "running_node_names": [],
}
