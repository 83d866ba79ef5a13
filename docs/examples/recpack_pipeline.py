"""recpack 0.3.6's Pipeline with gru4rec's GRU4RecNegSampling (runs where recpack is installed)."""

from recpack.pipelines import ALGORITHM_REGISTRY, PipelineBuilder
from recpack.preprocessing.preprocessors import DataFramePreprocessor
from recpack.scenarios import LastItemPrediction

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions

events = make_synthetic_sessions(2000, 300, seed=0)  # columns session_id, item_id, timestamp
im = DataFramePreprocessor("item_id", "session_id", "timestamp").process(events)
scenario = LastItemPrediction(validation=True, seed=0)
scenario.split(im)

# recpack's registry already holds its own GRU4RecNegSampling: register ours under another name.
ALGORITHM_REGISTRY.register("gru4rec.GRU4RecNegSampling", GRU4RecNegSampling)

builder = PipelineBuilder()
builder.set_data_from_scenario(scenario)
builder.add_algorithm("Popularity", params={"K": 100})
builder.add_algorithm(
    "gru4rec.GRU4RecNegSampling",
    params={"max_epochs": 3, "predict_topK": 100, "seed": 0},
    grid={"learning_rate": [0.03, 0.1]},
)
builder.set_optimisation_metric("CalibratedRecallK", K=20)
builder.add_metric("CalibratedRecallK", K=[10, 20])
builder.add_metric("ReciprocalRankK", K=20)
pipeline = builder.build()
pipeline.run()
print(pipeline.get_metrics(short=True).to_string())
