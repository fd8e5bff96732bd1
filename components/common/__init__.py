"""The contract every service shares: parameters, errors, product readers, AoI, outputs, storage, logging."""
