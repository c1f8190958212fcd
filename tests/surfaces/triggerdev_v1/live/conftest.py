from tests.live import web  # noqa: F401 - the live web role fixture
