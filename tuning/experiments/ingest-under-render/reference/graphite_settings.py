# The reference stack's reader: graphite-web 1.1.8 (Debian) served by gunicorn (@WORKERS@ sync
# workers) as operators serve graphite.wsgi; tuning/experiments/run fills in the @...@
# placeholders and points GRAPHITE_SETTINGS_MODULE here. No memcached (so no render cache);
# CARBONLINK_HOSTS names carbon-cache's cache query port when the case asks graphite-web to
# overlay cached points, as a deployment does ([] otherwise).
SECRET_KEY = 'carbyne-experiments'
ALLOWED_HOSTS = ['*']
STORAGE_DIR = '@DIR@'
WHISPER_DIR = '@DATA_DIR@'
LOG_DIR = '@DIR@/log'
INDEX_FILE = '@DIR@/index'
CARBONLINK_HOSTS = @CARBONLINK_HOSTS@
DATABASES = {'default': {'NAME': '@DIR@/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}
