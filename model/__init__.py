"""Training of discrete (GXNOR) networks: datasets, quantizers, layers, DST optimizer, nets."""
