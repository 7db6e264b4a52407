"""The generated pictures in docs/ are what the code gives today (`make docs` redraws them)."""

from pathlib import Path

from gxnor import docs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_schedule_picture_is_up_to_date():
    for name, text in docs.render().items():
        committed = (DOCS / name).read_text()
        assert committed == text, f"docs/{name} is stale: run `make docs`"


def test_the_picture_follows_the_cycle_model():
    from gxnor.hw import timing

    source = docs.schedule_json()
    n, p = docs.EXAMPLE["outputs"], docs.EXAMPLE["lanes"]
    assert len(source["signal"][0]["wave"]) == timing.image_cycles(docs.example_events(), n, p)
    names = [lane["name"] for lane in source["signal"][1:]]
    assert names == [b.replace("_", " ") for b in timing.BLOCKS]
