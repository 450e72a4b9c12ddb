"""Names of the inference methods of :mod:`flashsync_bayes.inference`, apart so that the command line parses without NumPyro."""

#: NUTS, the default.
NUTS = "bayes"
#: The Laplace approximation at the model's mode.
LAPLACE = "laplace"
#: The paper's joint least squares.
LSQ = "lsq"
#: Every method, the default first.
METHODS = (NUTS, LAPLACE, LSQ)
