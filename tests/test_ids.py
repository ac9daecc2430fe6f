import uuid

from app.core.ids import random_uuids


def test_random_uuids_are_distinct_version_4_uuids() -> None:
    ids = random_uuids(1000)
    assert len(set(ids)) == 1000
    for each in ids:
        parsed = uuid.UUID(each)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == each
    assert random_uuids(0) == []
