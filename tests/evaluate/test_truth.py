"""Ground-truth pairs from simulated traffic: sibling answers ordered by hidden quality."""

from __future__ import annotations

from evaluate.utility import truth_pairs


def test_siblings_are_paired_better_first_when_their_quality_differs() -> None:
    events = [
        {"type": "generation", "response_id": "a", "response": "text a"},
        {"type": "generation", "response_id": "b", "response": "text b"},
        {"type": "generation", "response_id": "c", "response": "text c"},
        {"type": "copy", "response_id": "a"},
    ]
    truth = [
        {"record": "sibling_set", "responses": [
            {"response_id": "a", "quality": 0.2}, {"response_id": "b", "quality": 0.9},
            {"response_id": "c", "quality": 0.22}, {"response_id": "gone", "quality": 1.0}]},
        {"record": "planted", "event_id": "x"},
    ]  # fmt: skip
    # a-c differ by 0.02, under the gap: no pair; "gone" has no text.
    assert truth_pairs(events, truth) == [("text b", "text a"), ("text b", "text c")]
