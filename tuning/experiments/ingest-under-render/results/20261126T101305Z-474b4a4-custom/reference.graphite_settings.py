# The reference stack's reader: graphite-web 1.1.8 (Debian) served by gunicorn (4 sync
# workers) as operators serve graphite.wsgi; tuning/experiments/run fills in the @...@
# placeholders and points GRAPHITE_SETTINGS_MODULE here. No memcached (so no render cache);
# CARBONLINK_HOSTS names carbon-cache's cache query port when the case asks graphite-web to
# overlay cached points, as a deployment does ([] otherwise).
SECRET_KEY = 'carbyne-experiments'
ALLOWED_HOSTS = ['*']
STORAGE_DIR = '$WORK/compare-reference'
WHISPER_DIR = '$WORK/data'
LOG_DIR = '$WORK/compare-reference/log'
INDEX_FILE = '$WORK/compare-reference/index'
CARBONLINK_HOSTS = ['127.0.0.1:24002']
DATABASES = {'default': {'NAME': '$WORK/compare-reference/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}
