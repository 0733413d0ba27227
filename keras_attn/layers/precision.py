"""The dtype policy of attention gates under mixed precision."""

import keras

_LOW_PRECISION = ("float16", "bfloat16")


def gate_dtype_policy(policy):
    """The dtype policy for the small layers that compute an attention gate.

    Under `mixed_float16` or `mixed_bfloat16` the gates (pooled statistics, their fully
    connected layers, sigmoid or softmax) run in float32: they are cheap, and a softmax over
    radix or a sigmoid near saturation is where half precision loses accuracy. Otherwise they
    follow the layer's own policy. (A mixed policy keeps float32 variables and computes in half
    precision; a plain `"float16"` or `"bfloat16"` policy asks for half precision throughout,
    and gets it.)

    Examples:
        >>> gate_dtype_policy(keras.DTypePolicy("mixed_float16")).name
        'float32'
        >>> gate_dtype_policy(keras.DTypePolicy("bfloat16")).name
        'bfloat16'
    """
    if policy.compute_dtype in _LOW_PRECISION and policy.variable_dtype == "float32":
        return keras.DTypePolicy("float32")
    return policy
