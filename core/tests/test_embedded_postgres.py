"""The embedded server's settings: written after initdb, and brought up to date later."""

from core import embedded_postgres


def test_settings_are_written_below_the_marker_after_initdb(tmp_path):
    conf = tmp_path / "postgresql.conf"
    conf.write_text("max_connections = 100\nshared_buffers = 128MB\n")

    embedded_postgres._tune(tmp_path)

    ours = conf.read_text().split("# todo-backend settings\n", 1)[1]
    assert ours.splitlines() == [
        f"{name} = {value}" for name, value in embedded_postgres._SETTINGS.items()
    ]


def test_a_server_tuned_before_gets_only_the_settings_it_lacks_once(tmp_path):
    # given a server tuned before autovacuum_naptime was one of the settings
    conf = tmp_path / "postgresql.conf"
    conf.write_text(
        "#autovacuum_naptime = 1min\n# todo-backend settings\nmax_connections = 200\n"
        "shared_buffers = 256MB\nwork_mem = 16MB\nmaintenance_work_mem = 256MB\n"
        "max_wal_size = 2GB\ntimezone = 'UTC'\n"
    )

    # when it starts twice
    embedded_postgres._tune(tmp_path)
    embedded_postgres._tune(tmp_path)

    # then the new setting was appended once, and nothing else
    text = conf.read_text()
    assert text.count("\nautovacuum_naptime = 10s\n") == 1
    assert text.count("max_connections") == 1
