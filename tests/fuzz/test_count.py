"""The suite's size is part of its claim: at least 316 distinct classes of bad input, counted here."""

from . import test_fit_json, test_quant_dirs, test_specs, test_tables

MIN_CLASSES = 316


def test_suite_covers_at_least_316_classes(capsys):
    counts = {"tables": test_tables.CLASS_COUNT, "fit JSON": test_fit_json.CLASS_COUNT,
              "ladder specs": test_specs.CLASSES, "checkpoint dirs and flags": test_quant_dirs.CLASSES}
    total = sum(counts.values())
    with capsys.disabled():
        print(f"\nfuzz classes: {counts} = {total} (plus 4 property tests, 210 generated examples)")
    assert total >= MIN_CLASSES
