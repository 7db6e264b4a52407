"""What every layer of gxnor shares: user-error types, option limits, safe output folders."""
