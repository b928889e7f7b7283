"""Output losses: softmax + cross-entropy, sigmoid + binary cross-entropy, squared error."""
