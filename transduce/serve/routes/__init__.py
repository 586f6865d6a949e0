"""The HTTP routes, one ``APIRouter`` per family: translate, score, forecast, models,
health and metrics. They reach the shared state through :func:`transduce.serve.state.get_state`."""

from transduce.serve.routes import forecast, health, metrics, models, score, translate

ROUTERS = [
    health.router,
    metrics.router,
    models.router,
    translate.router,
    score.router,
    forecast.router,
]
