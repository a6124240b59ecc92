"""Real workloads for Greenlight: the seed's MLP trained (a training job) and served (a
deployment). They import torch; nothing else in ``workers`` does."""
