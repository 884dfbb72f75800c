{
  "targets": [
    {
      "target_name": "udpkit",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/udpkit.c"],
          "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
