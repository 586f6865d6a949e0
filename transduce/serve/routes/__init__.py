"""The HTTP routes, one ``APIRouter`` per family: translate, forecast, models, health and
metrics. They reach the shared state through :func:`transduce.serve.state.get_state`."""

from transduce.serve.routes import forecast, health, metrics, models, translate

ROUTERS = [health.router, metrics.router, models.router, translate.router, forecast.router]
