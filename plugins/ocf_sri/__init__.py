"""SRI — Segregate, Relate, Imagine (Emami et al.) as an ocf plugin: a prior for any
grouper that provides a slot posterior."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_sri.objective import OrderedNLL
    from ocf_sri.prior import SRIPrior

    registry.register(SRIPrior, OrderedNLL)


@hookimpl
def ocf_register_results(registry):
    from ocf_sri.results import RESULTS

    registry.register(*RESULTS)
