"""Fast CPU kernels: int8 matmul with outlier decomposition, softmax family."""
