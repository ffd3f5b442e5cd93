# test_harness_mariadb.py: the MariaDB fixture gives a private server on 127.0.0.1
# where the test user can create, write and read its own database over TCP.

import harness


def test_create_insert_select_over_tcp(mariadb):
    mariadb.query("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(100)) "
                  "CHARACTER SET utf8mb4")
    mariadb.query("INSERT INTO notes VALUES (1, 'é 漢字 🎉'), (2, 'plain')")
    assert mariadb.query("SELECT id, body FROM notes ORDER BY id") == \
        [["1", "é 漢字 🎉"], ["2", "plain"]]
    # Over TCP on our own port, as our own user, in our own database.
    assert mariadb.query("SELECT CURRENT_USER(), @@port, DATABASE()") == \
        [[f"{mariadb.user}@127.0.0.1", str(mariadb.port), mariadb.db]]


def test_stop_kills_by_pid_and_frees_the_port(mariadb):
    pid, port = mariadb.pid, mariadb.port
    assert mariadb.stop() == 0
    assert harness.pid_gone(pid)
    assert harness.port_is_free(port)
