"""MLflow "model from code" entry point: the pyfunc is rebuilt from this file on load,
so no pickled Python object is stored with a logged forecaster."""

import mlflow

from xlstm_ts.tracking import ForecasterModel

mlflow.models.set_model(ForecasterModel())
