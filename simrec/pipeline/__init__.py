"""Moving the model: offline validation, the checkpoint pipeline and the update log."""
