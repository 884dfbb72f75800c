{
  "targets": [
    {
      "target_name": "udpkit",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/udpkit.c", "native/ring.c"],
          "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
          "ldflags": ["-pthread"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
