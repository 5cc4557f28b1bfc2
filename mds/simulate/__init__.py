"""Oracle-replay experiments (``mds simulate``): strategies × budgets × seeds × rounds on known labels."""

from mds.simulate.config import SimConfig, load_config, parse_config
from mds.simulate.data import PoolArrays, load_pool_arrays
from mds.simulate.outputs import headline, write_outputs
from mds.simulate.replay import SimResult, run_simulation

__all__ = ["PoolArrays", "SimConfig", "SimResult", "headline", "load_config", "load_pool_arrays", "parse_config",
           "run_simulation", "write_outputs"]
