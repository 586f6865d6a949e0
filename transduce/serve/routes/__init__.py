"""The HTTP routes, one ``APIRouter`` per family: translate, score, forecast, models,
health and metrics. They reach the shared state through :func:`transduce.serve.state.get_state`."""

from transduce.serve.routes import forecast, health, metrics, models, score, translate

# the busiest first: FastAPI matches a request against each router in turn
ROUTERS = [
    translate.router,
    forecast.router,
    score.router,
    health.router,
    metrics.router,
    models.router,
]
