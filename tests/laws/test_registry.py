import sys

import pytest

from scalinglab.errors import InputError
from scalinglab.laws.registry import LAWS, get_law


@pytest.mark.parametrize("name", sorted(LAWS), ids=sorted(LAWS))
def test_every_law_is_complete(name):
    law = get_law(name)
    assert law.name == name
    assert law.inputs and len(law.param_names) == len(law.public_names) == len(law.bounds())
    assert set(law.grid_axes()) == set(law.param_names)
    assert law.init_grid().shape[1] == law.n_params
    assert len(law.init_grid()) <= 5000  # the fitter batches the starts; keep grids a few thousand at most
    assert law.formula and "et al." in sys.modules[type(law).__module__].__doc__  # formula + paper citation


@pytest.mark.parametrize(
    ("spec", "attrs"),
    [("broken_power_law:column=params,n_breaks=2", {"column": "params", "n_breaks": 2, "inputs": ("params",)}),
     ("multi_power:warmup_in_loss_drop=true", {"warmup_in_loss_drop": True}),
     ("tissue:lam=0.99", {"lam": 0.99})],
    ids=["broken-column-and-breaks", "multi-power-warmup", "tissue-lambda"],
)
def test_options_round_trip_through_the_name(spec, attrs):
    law = get_law(spec)
    for k, v in attrs.items():
        assert getattr(law, k) == v
    again = get_law(law.name)  # what the bootstrap workers do
    assert again.name == law.name and again.param_names == law.param_names


@pytest.mark.parametrize("spec", ["nope", "broken_power_law:n_breaks", "broken_power_law:n_breaks=-1", "kaplan:x=1"],
                         ids=["unknown", "no-value", "bad-value", "unexpected-option"])
def test_bad_specs_raise_input_error(spec):
    with pytest.raises(InputError, match="--law"):
        get_law(spec)
